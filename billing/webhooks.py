"""Stripe webhooks: verify and store fast (the view), apply later (a task).

Storing is one INSERT keyed by Stripe's event id, so a repeated delivery finds
its row and does nothing more. Applying never trusts the payload's snapshot
of a subscription: it fetches the subscription's current state from Stripe,
which makes late, duplicated and reordered deliveries converge; the event's
time additionally stops an older event from overwriting a newer one's state.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import stripe
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from plans.models import Customer

from .gateway import subscription_fetch
from .models import EventStatus, StripeEvent
from .queueing import APPLY_STRIPE_EVENT, queue_after_commit
from .subscriptions import ApplyResult, customer_for_subscription, pending_usage_flush, subscription_apply

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    }
)
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed", "invoice.payment_succeeded"})


class SignatureInvalid(Exception):
    pass


def event_verify(payload: bytes, signature: str | None) -> dict:
    """The event, if `signature` is Stripe's for `payload` within the default
    tolerance (5 minutes); raises SignatureInvalid otherwise."""
    if not signature:
        raise SignatureInvalid("The Stripe-Signature header is missing.")
    try:
        stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
    except stripe.SignatureVerificationError as error:
        raise SignatureInvalid(f"The Stripe-Signature header does not verify: {error.user_message}") from None
    except ValueError:
        raise SignatureInvalid("The body is not a JSON Stripe event.") from None
    # The body as sent, not the SDK's object: that one turns *_decimal fields
    # into Decimals, which a JSON column cannot store.
    event = json.loads(payload)
    if not isinstance(event, dict) or not {"id", "type", "created", "data"} <= event.keys():
        raise SignatureInvalid("The body is not a Stripe event.")
    return event


def event_store(event: dict) -> tuple[StripeEvent, bool]:
    """Store a verified event once; (row, created). Queues it for applying."""
    stored, created = StripeEvent.objects.get_or_create(
        stripe_id=event["id"],
        defaults={
            "type": event["type"],
            "livemode": bool(event.get("livemode")),
            "stripe_created": datetime.fromtimestamp(event["created"], UTC),
            "payload": event,
        },
    )
    if created:
        queue_after_commit(APPLY_STRIPE_EVENT, stored.pk)
    return stored, created


@dataclass(frozen=True)
class Outcome:
    status: str  # EventStatus
    note: str = ""


def _subscription_id_of(event: dict) -> str | None:
    obj = event["data"]["object"]
    event_type = event["type"]
    if event_type in SUBSCRIPTION_EVENTS:
        return obj["id"]
    if event_type == "checkout.session.completed":
        return obj.get("subscription") if obj.get("mode") == "subscription" else None
    if event_type in INVOICE_EVENTS:
        # In this API version an invoice names its subscription under `parent`.
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        return details.get("subscription")
    return None


def _current_subscription(event: dict, subscription_id: str) -> dict:
    """Stripe's current state of the subscription; the event's own copy when
    Stripe no longer has it (deleted test data)."""
    try:
        return subscription_fetch(subscription_id)
    except stripe.InvalidRequestError as error:
        obj = event["data"]["object"]
        if error.http_status == 404 and obj.get("object") == "subscription":
            return obj
        raise


def _link_checkout_customer(session: dict) -> None:
    """Remember the Stripe customer of a completed Checkout, by our id in its metadata."""
    customer_id = (session.get("metadata") or {}).get("customer_id") or session.get("client_reference_id")
    stripe_customer = session.get("customer")
    if customer_id and str(customer_id).isdigit() and isinstance(stripe_customer, str):
        Customer.objects.filter(pk=int(customer_id), stripe_customer_id="").update(
            stripe_customer_id=stripe_customer
        )


def event_apply(event: dict) -> Outcome:
    """Apply one event's effect. Raises on a Stripe or database error (the task retries)."""
    subscription_id = _subscription_id_of(event)
    if subscription_id is None:
        return Outcome(EventStatus.IGNORED, f"nothing to do for {event['type']}")
    if event["type"] == "checkout.session.completed":
        _link_checkout_customer(event["data"]["object"])
    subscription = _current_subscription(event, subscription_id)
    event_at = datetime.fromtimestamp(event["created"], UTC)
    known = customer_for_subscription(subscription, lock=False)
    if known is not None:
        pending_usage_flush(known.pk)
    with transaction.atomic():
        customer = customer_for_subscription(subscription)
        if customer is None:
            return Outcome(EventStatus.IGNORED, f"no customer for subscription {subscription_id}")
        result: ApplyResult = subscription_apply(customer, subscription, event_at=event_at)
    if not result.applied:
        return Outcome(EventStatus.IGNORED, result.reason)
    return Outcome(EventStatus.APPLIED, f"customer {customer.pk}: {subscription['status']}")


def stored_event_apply(stored: StripeEvent) -> StripeEvent:
    """Apply a stored event and record the outcome; a failure is recorded and re-raised."""
    StripeEvent.objects.filter(pk=stored.pk).update(attempts=F("attempts") + 1)
    stored.refresh_from_db(fields=["attempts"])
    try:
        outcome = event_apply(stored.payload)
    except Exception as error:
        stored.status, stored.error = EventStatus.FAILED, f"{type(error).__name__}: {error}"
        stored.processed_at = timezone.now()
        stored.save(update_fields=["status", "error", "processed_at"])
        raise
    # For an ignored event the note says why; an applied one has no error to show.
    stored.error = "" if outcome.status == EventStatus.APPLIED else outcome.note
    stored.status, stored.processed_at = outcome.status, timezone.now()
    stored.save(update_fields=["status", "error", "processed_at"])
    return stored
