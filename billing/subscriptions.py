"""Applying a Stripe subscription's state to a customer: tier, status, period.

Stripe is the source of truth. Whatever told us something changed (a webhook,
the checkout return page, the reconcile task), the state applied is the
subscription as Stripe reports it, so duplicates and reordered deliveries
converge on the same result.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils import timezone

from apikeys.context import customer_key_contexts, invalidate_key_contexts
from core.redis_cluster import REDIS_UNAVAILABLE
from metering.flush import flush_customer
from plans.models import ENDED, PAID_ACCESS, Customer, QuotaPeriod, SubscriptionStatus, Tier
from plans.periods import period_bounds
from plans.services import DEFAULT_TIER_SLUG, tier_get

from .overage import closed_period_record, overage_report_before_change
from .queueing import SEND_PAST_DUE_WARNING, queue_after_commit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyResult:
    applied: bool
    reason: str = ""


def _moment(epoch: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def subscription_tier(subscription: dict) -> Tier | None:
    """The tier whose flat (or overage) price is on the subscription."""
    price_ids = [item["price"]["id"] for item in subscription["items"]["data"]]
    tier = Tier.objects.filter(stripe_price_id__in=price_ids).first()
    return tier or Tier.objects.filter(stripe_overage_price_id__in=price_ids).first()


def subscription_period(subscription: dict) -> tuple[datetime | None, datetime | None]:
    """Current period of the subscription. In this API version the period
    lives on each item (they share it unless items bill on different cycles,
    which this project never creates)."""
    items = subscription["items"]["data"]
    if not items:
        return None, None
    return _moment(items[0].get("current_period_start")), _moment(items[0].get("current_period_end"))


def pending_usage_flush(customer_id: int) -> None:
    """Before a subscription change is applied: the customer's usage still in
    Redis reaches the ledger, so a plan change reports it on the tier it was
    served on. Redis out of reach delays nothing: that usage then waits for
    the beat's flush, as before."""
    try:
        flush_customer(customer_id)
    except REDIS_UNAVAILABLE:
        logger.warning("customer %s: pending usage not flushed before the change", customer_id, exc_info=True)


def customer_for_subscription(subscription: dict, *, lock: bool = True) -> Customer | None:
    """The customer the subscription is about (our id in its metadata, else its
    Stripe customer); with `lock`, its row locked for the transaction."""
    customer_id = (subscription.get("metadata") or {}).get("customer_id")
    queryset = Customer.objects.select_related("tier")
    if lock:
        queryset = queryset.select_for_update()
    if customer_id and str(customer_id).isdigit():
        customer = queryset.filter(pk=int(customer_id)).first()
        if customer is not None:
            return customer
    stripe_customer = subscription.get("customer")
    if isinstance(stripe_customer, dict):
        stripe_customer = stripe_customer.get("id")
    return queryset.filter(stripe_customer_id=stripe_customer).first() if stripe_customer else None


def _quota_period_start(customer: Customer, tier: Tier, start: datetime | None, now: datetime):
    """Where the quota period starts after the change.

    A plan change does not reset the quota: while the quota period in progress
    runs, its start (the key of the Redis counter) is kept and only the limit
    changes, so "use it all, upgrade, downgrade" gains nothing. A renewal or a
    change after the period ended starts from Stripe's period.
    """
    if customer.tier_id == tier.pk or tier.quota_period != QuotaPeriod.MONTH:
        return start
    current_start, current_end = period_bounds(
        QuotaPeriod.MONTH, now, customer.current_period_start, customer.current_period_end
    )
    if start is None or current_start < start <= now < current_end:
        return current_start
    return start


STATE_FIELDS = (
    "tier_id",
    "subscription_status",
    "stripe_subscription_id",
    "stripe_customer_id",
    "cancel_at_period_end",
    "current_period_start",
    "current_period_end",
    "subscription_event_at",
    "past_due_since",
)


def _state(customer: Customer) -> tuple:
    return tuple(getattr(customer, name) for name in STATE_FIELDS)


def _refusal(customer: Customer, subscription: dict, event_at: datetime | None) -> str | None:
    """Why this state must not be applied, or None."""
    if event_at and customer.subscription_event_at and event_at < customer.subscription_event_at:
        return "an event newer than this one was already applied"
    status = subscription["status"]
    if status not in SubscriptionStatus.values:
        return f"unknown subscription status {status!r}"
    current_id = customer.stripe_subscription_id
    # The end of an older subscription must not end the one that replaced it.
    replaced = current_id and current_id != subscription["id"] and customer.subscription_status not in ENDED
    if replaced and status in ENDED:
        return f"about {subscription['id']}, not the current {current_id}"
    return None


def _already_ended(customer: Customer, subscription: dict) -> bool:
    """The subscription's end is applied already: its period must not move again."""
    return (
        subscription["status"] in ENDED
        and customer.stripe_subscription_id == subscription["id"]
        and customer.subscription_status == subscription["status"]
    )


def _tier_and_period(customer: Customer, subscription: dict, now: datetime):
    """(tier, period start, period end) the customer moves to; tier None when
    no tier has the subscription's price."""
    status = subscription["status"]
    if status in ENDED:
        ended_at = _moment(subscription.get("ended_at")) or now
        return tier_get(slug=DEFAULT_TIER_SLUG), min(ended_at, now), None
    start, end = subscription_period(subscription)
    tier = subscription_tier(subscription)
    if tier is not None and status not in PAID_ACCESS:  # incomplete: the first payment is pending
        tier = customer.tier
    return tier, start, end


def _assign(customer: Customer, subscription: dict, tier: Tier, start, end, event_at, now) -> None:
    status = subscription["status"]
    was_past_due = customer.subscription_status == SubscriptionStatus.PAST_DUE
    customer.tier = tier
    customer.subscription_status = status
    customer.stripe_subscription_id = subscription["id"]
    customer.cancel_at_period_end = bool(subscription.get("cancel_at_period_end"))
    customer.current_period_start, customer.current_period_end = start, end
    stripe_customer = subscription.get("customer")
    if isinstance(stripe_customer, str) and not customer.stripe_customer_id:
        customer.stripe_customer_id = stripe_customer
    if event_at and (customer.subscription_event_at is None or event_at > customer.subscription_event_at):
        customer.subscription_event_at = event_at
    if status == SubscriptionStatus.PAST_DUE and not was_past_due:
        customer.past_due_since = event_at or now
    elif status != SubscriptionStatus.PAST_DUE:
        customer.past_due_since = None


def _past_due_warning_due(customer: Customer) -> bool:
    return customer.subscription_status == SubscriptionStatus.PAST_DUE and (
        customer.past_due_warned_at is None or customer.past_due_warned_at < customer.past_due_since
    )


def subscription_apply(
    customer: Customer, subscription: dict, *, event_at: datetime | None = None
) -> ApplyResult:
    """Make the customer's tier and billing state follow `subscription`.

    Call inside a transaction with the customer row locked
    (customer_for_subscription does both with select_for_update).
    `event_at`: Stripe's time of the event that brought this state; an event
    older than the newest one applied is refused.

    1. Refuse an older event, an unknown status, or the end of a subscription
       that another one replaced.
    2. Work out the tier and period: the free tier from the end of an ended
       subscription; the tier of the subscription's price otherwise.
    3. Keep the quota period in progress across a plan change.
    4. Leaving a tier or a period: report its overage so far first, with
       the tier and period in force, and keep a period that closes as a
       ClosedPeriod (billing.overage).
    5. Assign the state; save and invalidate key contexts only if it changed.
    6. Queue the past-due email, once per episode.
    """
    refusal = _refusal(customer, subscription, event_at)
    if refusal:
        return ApplyResult(False, refusal)
    if _already_ended(customer, subscription):
        return ApplyResult(True, "already applied")
    now = timezone.now()
    tier, start, end = _tier_and_period(customer, subscription, now)
    if tier is None:
        return ApplyResult(False, "no tier has the subscription's price")
    start = _quota_period_start(customer, tier, start, now)
    if tier.pk != customer.tier_id or start != customer.current_period_start:
        closed = closed_period_record(customer, next_tier_id=tier.pk, next_start=start, now=now)
        overage_report_before_change(customer, now=now, closes_at=closed.end if closed else None)

    before = _state(customer)
    _assign(customer, subscription, tier, start, end, event_at, now)
    if _state(customer) == before:
        return ApplyResult(True, "already applied")  # no write, no cache invalidation
    customer.save()
    invalidate_key_contexts(customer_key_contexts([customer.pk]))
    if _past_due_warning_due(customer):
        queue_after_commit(SEND_PAST_DUE_WARNING, customer.pk)
    logger.info(
        "customer %s: subscription %s is %s, tier %s",
        customer.pk,
        subscription["id"],
        customer.subscription_status,
        tier,
    )
    return ApplyResult(True)
