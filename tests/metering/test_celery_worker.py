"""Metering tasks through a real Celery worker process and RabbitMQ, not eagerly."""

from datetime import UTC, datetime

import pytest
from django.db.models import Sum
from django_redis import get_redis_connection

from metering.models import QuotaAlert, UsageRecord
from metering.tasks import flush_usage_task, send_quota_alert
from tests.celery_worker import Worker, running_worker, send, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "/api/v1/echo"
PERIOD = datetime(2026, 11, 1, tzinfo=UTC)
SENTINEL_PERIOD = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    with running_worker(tmp_path_factory.mktemp("celery"), name="metering") as started:
        yield started


def drain(worker: Worker, customer) -> None:
    """Wait until the worker has run every task sent so far: it runs them one
    at a time in order (solo pool, prefetch 1), so a last one marks the end."""
    send(send_quota_alert, worker, customer.pk, SENTINEL_PERIOD.isoformat(), 100)
    wait_for(
        lambda: QuotaAlert.objects.filter(customer=customer, period_start=SENTINEL_PERIOD).exists(),
        "run the tasks sent before",
    )


def recorded(customer) -> int:
    return UsageRecord.objects.filter(customer=customer).aggregate(total=Sum("count"))["total"] or 0


def test_a_worker_process_flushes_usage_to_postgresql(worker, via_broker, key_client, customer):
    for _ in range(3):
        assert key_client.get(ECHO).status_code == 200
    send(flush_usage_task, worker)
    assert wait_for(lambda: recorded(customer), "flush the usage") == 3


def test_the_flush_runs_in_the_worker_not_in_this_process(worker, via_broker, key_client, customer):
    key_client.get(ECHO)
    task_id = send(flush_usage_task, worker)
    wait_for(lambda: worker.ran(task_id), "log the task's success")
    assert recorded(customer) == 1


def test_a_worker_process_empties_the_pending_usage(worker, via_broker, key_client, customer):
    key_client.get(ECHO)
    send(flush_usage_task, worker)
    drain(worker, customer)
    assert get_redis_connection("default").keys("metering:v1:usage:*") == []


def test_a_flush_sent_twice_to_a_worker_counts_once(worker, via_broker, key_client, customer):
    key_client.get(ECHO)
    send(flush_usage_task, worker)
    send(flush_usage_task, worker)
    drain(worker, customer)
    assert recorded(customer) == 1


def test_a_worker_process_sends_a_quota_alert_once(worker, via_broker, customer):
    send(send_quota_alert, worker, customer.pk, PERIOD.isoformat(), 80)
    send(send_quota_alert, worker, customer.pk, PERIOD.isoformat(), 80)
    drain(worker, customer)
    assert QuotaAlert.objects.filter(customer=customer, period_start=PERIOD).count() == 1
