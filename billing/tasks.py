"""Celery tasks that talk to Stripe. Thin: they take ids and call services.

All are acks_late (a worker killed mid-task leaves the message to be
redelivered) and idempotent (redelivery, a retry or a replay from admin has
no second effect: events are applied as Stripe's current state, creates carry
idempotency keys, meter events carry their identifier). Stripe unreachable,
rate limiting or failing: retried with exponential backoff and full jitter,
a bounded number of times; then the row shows "failed" in admin for a replay.
"""

import logging
import random

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import OperationalError, transaction
from django.utils import timezone

from plans.models import Customer, Tier

from .models import OverageReport, StripeEvent, StripeSync, SyncStatus
from .stripe_api import is_retryable

logger = logging.getLogger(__name__)

TASK_OPTIONS = {"acks_late": True, "bind": True, "max_retries": None}  # bounded by _retry_or_fail


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
    from .webhooks import stored_event_apply

    stored = StripeEvent.objects.filter(pk=event_pk).first()
    if stored is None:
        return "missing"
    try:
        return stored_event_apply(stored).status
    except Exception as error:
        _retry_or_raise(self, error)


def _sync_catalog(sync: StripeSync) -> dict:
    from .gateway import catalog_sync_tier

    tier = Tier.objects.get(pk=sync.arguments["tier_id"])
    ids = catalog_sync_tier(tier)
    if ids:
        # update(), not save(): saving a tier queues this very sync again.
        Tier.objects.filter(pk=tier.pk).update(**ids)
    return ids


def _sync_overage(sync: StripeSync) -> dict:
    from .gateway import meter_event_send
    from .overage import report_timestamp

    report = OverageReport.objects.select_related("customer").get(pk=sync.arguments["report_id"])
    event = meter_event_send(
        stripe_customer_id=report.customer.stripe_customer_id,
        units=report.units,
        identifier=report.identifier,
        timestamp=report_timestamp(report),
    )
    OverageReport.objects.filter(pk=report.pk, reported_at__isnull=True).update(reported_at=timezone.now())
    return {"identifier": event.get("identifier", report.identifier)}


SYNC_OPERATIONS = {"catalog": _sync_catalog, "overage": _sync_overage}


@shared_task(**TASK_OPTIONS)
def run_stripe_sync(self, sync_pk: int) -> str:
    sync = StripeSync.objects.filter(pk=sync_pk).first()
    if sync is None or sync.status == SyncStatus.SUCCEEDED:
        return "done"
    StripeSync.objects.filter(pk=sync.pk).update(attempts=sync.attempts + 1)
    try:
        result = SYNC_OPERATIONS[sync.operation](sync)
    except Exception as error:
        StripeSync.objects.filter(pk=sync.pk).update(
            status=SyncStatus.FAILED, error=f"{type(error).__name__}: {error}", updated_at=timezone.now()
        )
        _retry_or_raise(self, error)
    StripeSync.objects.filter(pk=sync.pk).update(
        status=SyncStatus.SUCCEEDED, result=result, error="", updated_at=timezone.now()
    )
    return "succeeded"


def queue_after_commit(task, *args) -> None:
    """`task.delay(*args)` once the transaction commits. A failure to queue (or,
    eagerly, of the task itself) is logged, not raised: the row it is about is
    stored with its status, and the reconcile or a replay from admin finishes it."""

    def send():
        try:
            task.delay(*args)
        except Exception:
            logger.exception("%s%r failed or could not be queued", task.name, args)

    transaction.on_commit(send)


def stripe_sync_queue(*, operation: str, target: str, arguments: dict, idempotency_key: str) -> StripeSync:
    """Record an outbound change and queue it after commit. The same key twice is one sync."""
    sync, _ = StripeSync.objects.get_or_create(
        idempotency_key=idempotency_key,
        defaults={"operation": operation, "target": target, "arguments": arguments},
    )
    queue_after_commit(run_stripe_sync, sync.pk)
    return sync


def catalog_sync_queue(tier: Tier) -> StripeSync | None:
    """Queue the tier's catalog sync (paid tiers, when Stripe is configured)."""
    from .stripe_api import is_configured

    if not is_configured() or tier.price <= 0:
        return None
    version = f"{tier.slug}:{tier.price}:{tier.currency}:{tier.overage_price_per_1000}:{tier.name}"
    return stripe_sync_queue(
        operation="catalog",
        target=f"tier:{tier.slug}",
        arguments={"tier_id": tier.pk},
        idempotency_key=f"catalog:{version}:{timezone.now().timestamp()}",
    )


@shared_task(acks_late=True)
def report_overage_task() -> int:
    """Beat, hourly: record each customer's new overage and queue its meter event."""
    from .overage import overage_reports_create
    from .stripe_api import is_configured

    if not is_configured():
        return 0
    with transaction.atomic():
        reports = overage_reports_create(now=timezone.now())
        for report in reports:
            stripe_sync_queue(
                operation="overage",
                target=f"customer:{report.customer_id}",
                arguments={"report_id": report.pk},
                idempotency_key=report.identifier,
            )
    return len(reports)


@shared_task(**TASK_OPTIONS)
def reconcile_customer(self, customer_pk: int) -> str:
    from .reconcile import customer_reconcile

    try:
        return customer_reconcile(customer_pk)
    except Exception as error:
        _retry_or_raise(self, error)


@shared_task(acks_late=True)
def reconcile_subscriptions_task() -> int:
    """Beat: compare every customer Stripe knows with Stripe, one task each."""
    from .stripe_api import is_configured

    if not is_configured():
        return 0
    customer_pks = list(Customer.objects.exclude(stripe_customer_id="").values_list("pk", flat=True))
    for pk in customer_pks:
        reconcile_customer.delay(pk)
    return len(customer_pks)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, retry_jitter=True, max_retries=8)
def send_past_due_warning(customer_pk: int) -> bool:
    """The one email of a past-due episode: the payment failed, access ends
    after the grace period unless it is settled."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().select_related("user").filter(pk=customer_pk).first()
        if customer is None or customer.past_due_since is None or not customer.user.email:
            return False
        if customer.past_due_warned_at and customer.past_due_warned_at >= customer.past_due_since:
            return False
        suspended_from = customer.suspended_from()
        send_mail(
            subject="Your payment failed: please update your payment method",
            message=(
                "Stripe could not collect your last payment. Your API access continues until "
                f"{suspended_from:%Y-%m-%d %H:%M} UTC; after that the API answers 402 until the "
                f"payment is settled. Manage billing from your dashboard: {settings.BILLING_PAGE_PATH}"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[customer.user.email],
        )
        customer.past_due_warned_at = timezone.now()
        customer.save(update_fields=["past_due_warned_at", "updated_at"])
    return True
