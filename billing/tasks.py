"""Celery tasks that talk to Stripe. Thin: they take ids and call services.

All are acks_late (a worker killed mid-task leaves the message to be
redelivered) and idempotent (redelivery, a retry or a replay from admin has
no second effect: events are applied as Stripe's current state, creates carry
idempotency keys, meter events carry their identifier). Stripe unreachable,
rate limiting or failing: retried with exponential backoff and full jitter,
a bounded number of times; then the row shows "failed" in admin for a replay.
Services queue these by name (billing.queueing).
"""

import random

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from core.periodic import once_per_interval

from .emails import past_due_warning_send
from .models import StripeEvent
from .overage import overage_reports_queue
from .reconcile import customer_reconcile, reconcile_all_queue
from .stripe_api import is_retryable
from .sync import stripe_sync_run
from .usage_reconcile import usage_reconcile
from .webhooks import stored_event_apply

TASK_OPTIONS = {"acks_late": True, "bind": True, "max_retries": None}  # bounded by _retry_or_raise


def backoff_seconds(attempt: int) -> float:
    """Full jitter: uniform in [0, min(cap, 2^attempt)] so retries of many
    tasks after one outage do not arrive at Stripe together."""
    return random.uniform(0, min(settings.STRIPE_TASK_BACKOFF_MAX_SECONDS, 2**attempt))


def _retry_or_raise(task, error: Exception):
    retryable = is_retryable(error) or isinstance(error, OperationalError)
    # Eager (the embedded default) would retry at once, in the request: no.
    if retryable and not task.request.is_eager and task.request.retries < settings.STRIPE_TASK_MAX_RETRIES:
        raise task.retry(exc=error, countdown=backoff_seconds(task.request.retries + 1))
    raise error


@shared_task(**TASK_OPTIONS)
def apply_stripe_event(self, event_pk: int) -> str:
    stored = StripeEvent.objects.filter(pk=event_pk).first()
    if stored is None:
        return "missing"
    try:
        return stored_event_apply(stored).status
    except Exception as error:
        _retry_or_raise(self, error)


@shared_task(**TASK_OPTIONS)
def run_stripe_sync(self, sync_pk: int) -> str:
    try:
        return stripe_sync_run(sync_pk)
    except Exception as error:
        _retry_or_raise(self, error)


@shared_task(acks_late=True)
@once_per_interval("report-overage")
def report_overage_task() -> int:
    """Beat, hourly: record each customer's new overage and queue its meter event."""
    return overage_reports_queue(now=timezone.now())


@shared_task(**TASK_OPTIONS)
def reconcile_customer(self, customer_pk: int) -> str:
    try:
        return customer_reconcile(customer_pk)
    except Exception as error:
        _retry_or_raise(self, error)


@shared_task(acks_late=True)
@once_per_interval("reconcile-subscriptions")
def reconcile_subscriptions_task() -> int:
    """Beat: compare every customer Stripe knows with Stripe, one task each."""
    return reconcile_all_queue()


@shared_task(acks_late=True)
@once_per_interval("reconcile-usage")
def reconcile_usage_task() -> int:
    """Beat, daily: compare Redis, the ledger and Stripe for the previous and
    current periods; the run is recorded for admin. How many rows drift."""
    return usage_reconcile(now=timezone.now()).run.drifting_rows


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, retry_jitter=True, max_retries=8)
def send_past_due_warning(customer_pk: int) -> bool:
    return past_due_warning_send(customer_pk)
