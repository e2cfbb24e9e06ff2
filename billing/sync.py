"""Outbound changes to Stripe, each recorded as a StripeSync row and run by a task.

The row's idempotency key is sent with every attempt, so a retry or a replay
from admin never duplicates the side effect in Stripe.
"""

from django.db.models import F
from django.utils import timezone

from plans.models import Customer, Tier

from .gateway import catalog_sync_tier, meter_event_send, stripe_customer_email_update, subscription_cancel
from .models import OverageReport, StripeSync, SyncStatus
from .queueing import RUN_STRIPE_SYNC, queue_after_commit
from .stripe_api import is_configured


def stripe_sync_queue(*, operation: str, target: str, arguments: dict, idempotency_key: str) -> StripeSync:
    """Record an outbound change and queue it after commit. The same key twice is one sync."""
    sync, _ = StripeSync.objects.get_or_create(
        idempotency_key=idempotency_key,
        defaults={"operation": operation, "target": target, "arguments": arguments},
    )
    queue_after_commit(RUN_STRIPE_SYNC, sync.pk)
    return sync


def catalog_sync_queue(tier: Tier) -> StripeSync | None:
    """Queue the tier's catalog sync (paid tiers, when Stripe is configured)."""
    if not is_configured() or tier.price <= 0:
        return None
    version = f"{tier.slug}:{tier.price}:{tier.currency}:{tier.overage_price_per_1000}:{tier.name}"
    return stripe_sync_queue(
        operation="catalog",
        target=f"tier:{tier.slug}",
        arguments={"tier_id": tier.pk},
        idempotency_key=f"catalog:{version}:{timezone.now().timestamp()}",
    )


def customer_email_sync_queue(customer: Customer) -> StripeSync | None:
    """Queue sending the customer's (new, verified) email to their Stripe
    customer, if they have one. The task sends the address current when it
    runs, so a late retry never puts back an older one."""
    if not customer.stripe_customer_id:
        return None
    return stripe_sync_queue(
        operation="customer_email",
        target=f"customer:{customer.pk}",
        arguments={"customer_id": customer.pk},
        idempotency_key=f"customer-email:{customer.pk}:{timezone.now().timestamp()}",
    )


def subscription_cancel_queue(customer: Customer) -> StripeSync | None:
    """Queue cancelling the customer's subscription at Stripe, if they have
    one. Recorded even without Stripe configured: a cancellation owed must
    show in admin (failed, for a replay), never be dropped."""
    if not customer.stripe_subscription_id:
        return None
    subscription_id = customer.stripe_subscription_id
    return stripe_sync_queue(
        operation="subscription_cancel",
        target=f"customer:{customer.pk}",
        arguments={"subscription_id": subscription_id},
        idempotency_key=f"subscription-cancel:{subscription_id}",
    )


def _sync_customer_email(sync: StripeSync) -> dict:
    customer = Customer.objects.select_related("user").get(pk=sync.arguments["customer_id"])
    email = customer.user.email
    if not email or not customer.stripe_customer_id:
        return {"skipped": "no email or no Stripe customer"}  # the account was deleted meanwhile
    stripe_customer_email_update(customer.stripe_customer_id, email)
    return {"email": email}


def _sync_subscription_cancel(sync: StripeSync) -> dict:
    subscription = subscription_cancel(sync.arguments["subscription_id"])
    return {"status": subscription["status"]}


def _sync_catalog(sync: StripeSync) -> dict:
    tier = Tier.objects.get(pk=sync.arguments["tier_id"])
    ids = catalog_sync_tier(tier)
    if ids:
        # update(), not save(): saving a tier queues this very sync again.
        Tier.objects.filter(pk=tier.pk).update(**ids)
    return ids


def _sync_overage(sync: StripeSync) -> dict:
    report = OverageReport.objects.select_related("customer").get(pk=sync.arguments["report_id"])
    event = meter_event_send(
        stripe_customer_id=report.customer.stripe_customer_id,
        units=report.units,
        identifier=report.identifier,
        timestamp=report.meter_timestamp(),
    )
    OverageReport.objects.filter(pk=report.pk, reported_at__isnull=True).update(reported_at=timezone.now())
    return {"identifier": event.get("identifier", report.identifier)}


OPERATIONS = {
    "catalog": _sync_catalog,
    "overage": _sync_overage,
    "customer_email": _sync_customer_email,
    "subscription_cancel": _sync_subscription_cancel,
}


def stripe_sync_run(sync_pk: int) -> str:
    """Send one recorded change to Stripe and record the outcome: "done" when
    there is nothing (left) to do, "succeeded"; on failure the error is stored
    on the row and raised for the task to retry."""
    sync = StripeSync.objects.filter(pk=sync_pk).first()
    if sync is None or sync.status == SyncStatus.SUCCEEDED:
        return "done"
    StripeSync.objects.filter(pk=sync.pk).update(attempts=F("attempts") + 1)
    try:
        result = OPERATIONS[sync.operation](sync)
    except Exception as error:
        StripeSync.objects.filter(pk=sync.pk).update(
            status=SyncStatus.FAILED, error=f"{type(error).__name__}: {error}", updated_at=timezone.now()
        )
        raise
    StripeSync.objects.filter(pk=sync.pk).update(
        status=SyncStatus.SUCCEEDED, result=result, error="", updated_at=timezone.now()
    )
    return "succeeded"
