"""Stripe tasks in a real Celery worker: retries with backoff, bounded, and a
worker killed mid-task (acks_late: the event is redelivered and applied once)."""

import os
import signal
import time

import pytest
from django.test import override_settings

from billing.models import EventStatus, StripeEvent
from billing.tasks import apply_stripe_event
from plans.models import Customer, SubscriptionStatus
from tests.celery_worker import running_worker, send, wait_for

from .conftest import WEBHOOK_SECRET, make_event
from .stripe_double import SERVER_ERROR, StripeDouble

pytestmark = pytest.mark.django_db(transaction=True)

MAX_RETRIES = 3


@pytest.fixture(scope="module")
def module_double():
    double = StripeDouble().start()
    yield double
    double.stop()


def worker_env(double: StripeDouble) -> dict[str, str]:
    return {
        "STRIPE_SECRET_KEY": "sk_test_double",
        "STRIPE_API_BASE": double.url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_TIMEOUT_SECONDS": "10",
        "STRIPE_TASK_MAX_RETRIES": str(MAX_RETRIES),
        "STRIPE_TASK_BACKOFF_MAX_SECONDS": "1",  # real backoff, compressed to keep the test short
    }


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory, module_double):
    with running_worker(
        tmp_path_factory.mktemp("celery"), name="billing", env=worker_env(module_double)
    ) as started:
        yield started


@pytest.fixture
def stripe_double(module_double):
    """The module's double, reset, with this process's settings pointing at it."""
    module_double._faults.clear()
    with override_settings(
        STRIPE_SECRET_KEY="sk_test_double",
        STRIPE_API_BASE=module_double.url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    ):
        yield module_double


def stored_event(stripe_double, stripe_tiers, customer) -> StripeEvent:
    """A verified subscription event, stored as the webhook view stores it."""
    now = int(time.time())
    subscription = stripe_double.add_subscription(
        customer=customer.stripe_customer_id,
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=now,
        period_end=now + 30 * 86_400,
        metadata={"customer_id": str(customer.pk)},
    )
    event = make_event("customer.subscription.created", subscription)
    return StripeEvent.objects.create(
        stripe_id=event["id"], type=event["type"], stripe_created="2026-11-28T00:00:00Z", payload=event
    )


def fetches_of(double, stored: StripeEvent) -> int:
    subscription_id = stored.payload["data"]["object"]["id"]
    return len(double.requests_to("GET", f"/v1/subscriptions/{subscription_id}"))


def test_a_worker_retries_an_event_until_stripe_answers(
    worker, via_broker, stripe_double, stripe_tiers, stripe_customer
):
    stored = stored_event(stripe_double, stripe_tiers, stripe_customer)
    stripe_double.fail("GET", "/v1/subscriptions/", SERVER_ERROR, times=2)
    send(apply_stripe_event, worker, stored.pk)
    wait_for(lambda: StripeEvent.objects.get(pk=stored.pk).status == EventStatus.APPLIED, "apply the event")
    stored.refresh_from_db()
    assert (stored.attempts, stored.error) == (3, "")
    assert fetches_of(stripe_double, stored) == 3
    customer = Customer.objects.select_related("tier").get(pk=stripe_customer.pk)
    assert (customer.tier.slug, customer.subscription_status) == ("pro", SubscriptionStatus.ACTIVE)


def test_retries_are_bounded_and_the_event_is_left_failed(
    worker, via_broker, stripe_double, stripe_tiers, stripe_customer
):
    stored = stored_event(stripe_double, stripe_tiers, stripe_customer)
    stripe_double.fail("GET", "/v1/subscriptions/", SERVER_ERROR, times=100)
    task_id = send(apply_stripe_event, worker, stored.pk)
    wait_for(lambda: worker.gave_up(task_id), "give up after the last attempt")
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == (EventStatus.FAILED, MAX_RETRIES + 1)
    assert fetches_of(stripe_double, stored) == MAX_RETRIES + 1
    assert "Something went wrong on Stripe's end" in stored.error


def test_a_worker_killed_mid_task_leaves_the_event_to_the_next_worker(
    worker, via_broker, stripe_double, stripe_tiers, stripe_customer, tmp_path
):
    stored = stored_event(stripe_double, stripe_tiers, stripe_customer)
    with running_worker(tmp_path, name="billing-doomed", env=worker_env(stripe_double)) as doomed:
        stripe_double.delay("GET", "/v1/subscriptions/", seconds=3)
        send(apply_stripe_event, doomed, stored.pk)
        wait_for(lambda: fetches_of(stripe_double, stored) == 1, "start the task")
        os.kill(doomed.process.pid, signal.SIGKILL)  # mid-task: the message was never acknowledged
        doomed.process.wait(timeout=10)
        assert StripeEvent.objects.get(pk=stored.pk).status == EventStatus.RECEIVED

        with running_worker(tmp_path, name="billing-heir", env=worker_env(stripe_double), queue=doomed.queue):
            wait_for(
                lambda: StripeEvent.objects.get(pk=stored.pk).status == EventStatus.APPLIED, "redeliver it"
            )
    stored.refresh_from_db()
    assert stored.attempts == 2
    customer = Customer.objects.select_related("tier").get(pk=stripe_customer.pk)
    assert customer.tier.slug == "pro"
