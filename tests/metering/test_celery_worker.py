"""Metering tasks through a real Celery worker process and RabbitMQ, not eagerly.

The worker runs on the test database and Redis, and consumes a queue of its
own (a new name each run), so stale messages and other workers on the same
broker never interfere. The tests commit their data (transaction=True) so
that the worker sees it.
"""

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Sum
from django_redis import get_redis_connection

from metering.models import QuotaAlert, UsageRecord
from metering.tasks import flush_usage_task, send_quota_alert
from saas.celery import app
from tests.utils import stop

pytestmark = pytest.mark.django_db(transaction=True)

BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
ECHO = "/api/v1/echo"
STARTUP_SECONDS = 30
TASK_SECONDS = 30
PERIOD = datetime(2026, 11, 1, tzinfo=UTC)
SENTINEL_PERIOD = datetime(2000, 1, 1, tzinfo=UTC)


def worker_environment() -> dict[str, str]:
    db = settings.DATABASES["default"]
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }


def wait_until_ready(process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}:\n{log.read_text()}")
        if " ready." in log.read_text():
            return
        time.sleep(0.1)
    pytest.fail(f"the Celery worker was not ready in {STARTUP_SECONDS} s:\n{log.read_text()}")


def delete_queue(queue: str) -> None:
    with app.connection_for_write(BROKER_URL) as conn:
        conn.default_channel.queue_delete(queue)


@dataclass(frozen=True)
class Worker:
    queue: str
    log: Path

    def ran(self, task_id: str) -> bool:
        return f"[{task_id}] succeeded" in self.log.read_text()


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    """The queue a real worker (solo pool) consumes, on the test database."""
    queue = f"metering-test-{uuid.uuid4().hex}"
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    command = [
        str(Path(sys.executable).with_name("celery")),
        *("-A", "saas", "worker", "--pool", "solo", "--concurrency", "1", "-Q", queue),
        *("-n", f"{queue}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"),
    ]
    with log.open("w") as log_file:
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=worker_environment(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(process, log)
        yield Worker(queue, log)
    finally:
        stop(process)
        delete_queue(queue)


@pytest.fixture
def via_broker():
    """Send tasks to RabbitMQ instead of running them in this process."""
    saved = app.conf.task_always_eager, app.conf.broker_url
    app.conf.task_always_eager, app.conf.broker_url = False, BROKER_URL
    yield
    app.conf.task_always_eager, app.conf.broker_url = saved


def send(task, worker: Worker, *args) -> str:
    """Queue the task for the worker; returns its id."""
    with app.connection_for_write(BROKER_URL) as conn:
        return task.apply_async(args=args, queue=worker.queue, connection=conn).id


def wait_for(condition, what: str):
    deadline = time.monotonic() + TASK_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"the worker did not {what} within {TASK_SECONDS} s")


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
