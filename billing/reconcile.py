"""Healing drift from missed webhooks: compare a customer with Stripe."""

from django.db import transaction
from django.utils import timezone

from plans.models import ENDED, Customer

from .gateway import subscriptions_of
from .queueing import RECONCILE_CUSTOMER, queue_now
from .stripe_api import is_configured
from .subscriptions import pending_usage_flush, subscription_apply


def current_subscription(subscriptions: list[dict]) -> dict | None:
    """The subscription that decides access: a live one if any, else the newest."""
    if not subscriptions:
        return None
    live = [sub for sub in subscriptions if sub["status"] not in ENDED]
    return max(live or subscriptions, key=lambda sub: sub["created"])


def customer_reconcile(customer_pk: int) -> str:
    """Apply Stripe's current state of the customer's subscription. Returns what happened."""
    customer = Customer.objects.filter(pk=customer_pk).exclude(stripe_customer_id="").first()
    if customer is None:
        return "no stripe customer"
    fetched_at = timezone.now()
    subscription = current_subscription(subscriptions_of(customer.stripe_customer_id))
    if subscription is None:
        return "no subscription"
    pending_usage_flush(customer_pk)
    with transaction.atomic():
        customer = Customer.objects.select_for_update().select_related("tier").get(pk=customer_pk)
        before = (customer.tier_id, customer.subscription_status, customer.current_period_end)
        # Stamped with the fetch time: an event older than this state must not undo it.
        result = subscription_apply(customer, subscription, event_at=fetched_at)
        after = (customer.tier_id, customer.subscription_status, customer.current_period_end)
    if not result.applied:
        return f"skipped: {result.reason}"
    return "healed" if before != after else "in sync"


def reconcile_all_queue() -> int:
    """Queue a reconcile of every customer Stripe knows, one task each; how many."""
    if not is_configured():
        return 0
    customer_pks = list(Customer.objects.exclude(stripe_customer_id="").values_list("pk", flat=True))
    for pk in customer_pks:
        queue_now(RECONCILE_CUSTOMER, pk)
    return len(customer_pks)
