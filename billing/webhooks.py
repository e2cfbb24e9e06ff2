"""Stripe webhooks: verify and store fast (the view), apply later (a task).

Storing is one INSERT keyed by Stripe's event id, so a repeated delivery finds
its row and does nothing more. Applying never trusts the payload's snapshot
of a subscription: it fetches the subscription's current state from Stripe,
which makes late, duplicated and reordered deliveries converge; the event's
time additionally stops an older event from overwriting a newer one's state.
"""

import json
import logging
import math
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


class EventMalformed(Exception):
    """A body that verifies but is not a Stripe event we can store and apply.

    Refused before anything is written: Stripe retries every non-2xx answer
    for three days, so such a body must be a quick 400, never a 500."""


def event_verify(payload: bytes, signature: str | None) -> dict:
    """The event, if `signature` is Stripe's for `payload` within the default
    tolerance (5 minutes) and the body has an event's shape (event_parse);
    raises SignatureInvalid or EventMalformed otherwise."""
    if not signature:
        raise SignatureInvalid("The Stripe-Signature header is missing.")
    try:
        # Only the signature: the SDK's construct_event also builds an Event
        # object, and raises AttributeError (a 500) on a body that is no object.
        stripe.WebhookSignature.verify_header(
            payload, signature, settings.STRIPE_WEBHOOK_SECRET, stripe.Webhook.DEFAULT_TOLERANCE
        )
    except stripe.SignatureVerificationError as error:
        raise SignatureInvalid(f"The Stripe-Signature header does not verify: {error.user_message}") from None
    except UnicodeDecodeError:  # Stripe signs UTF-8 text: this body was never signed by it
        raise SignatureInvalid("The body is not UTF-8 text, so it carries no Stripe signature.") from None
    return event_parse(payload)


def event_parse(payload: bytes) -> dict:
    """The event in a verified body, as sent: not the SDK's object, which
    turns *_decimal fields into Decimals that a JSON column cannot store.
    Raises EventMalformed unless it is a Stripe event that can be stored
    and routed (the fields event_apply reads have the types it expects)."""
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise EventMalformed("The body is not JSON.") from None
    problem = _unstorable(event) or _envelope_problem(event) or _routing_problem(event)
    if problem:
        raise EventMalformed(f"The body is not a Stripe event: {problem}.")
    return event


def _unstorable(value) -> str | None:
    """Why PostgreSQL would refuse to store `value` (jsonb and text columns), or None.

    Iterative: a deep body that json.loads still takes must not exhaust the stack here."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "it holds a NUL character"
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return "it holds an unpaired surrogate escape"
        elif isinstance(item, float) and not math.isfinite(item):
            return "it holds a number that is not finite"
    return None


def _text_field(name: str) -> int:
    return StripeEvent._meta.get_field(name).max_length


def _envelope_problem(event) -> str | None:
    if not isinstance(event, dict) or event.get("object") != "event":
        return "it is not an object whose object is event"
    for key, column in (("id", "stripe_id"), ("type", "type")):
        value = event.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= _text_field(column):
            return f"{key} is not a string of 1 to {_text_field(column)} characters"
    created = event.get("created")
    if type(created) is not int or _moment(created) is None:
        return "created is not a time in seconds since 1970"
    if not isinstance(event.get("livemode", False), bool):
        return "livemode is not true or false"
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "data.object is not an object"
    return None


def _moment(created: int) -> datetime | None:
    """Stripe's `created` as a time, or None when no datetime can hold it."""
    if created < 0:
        return None
    try:
        return datetime.fromtimestamp(created, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _routing_problem(event: dict) -> str | None:
    """Why event_apply could not read the fields it routes by, or None."""
    try:
        _subscription_id_of(event)
        if event["type"] == "checkout.session.completed":
            _optional(event["data"]["object"], "metadata", dict)
    except EventMalformed as error:
        return str(error)
    return None


def _optional(obj: dict, key: str, kind: type):
    """obj[key], None when absent or null; raises EventMalformed when it is
    of another kind, or an empty string."""
    value = obj.get(key)
    if value is None or (isinstance(value, kind) and value != ""):
        return value
    raise EventMalformed(f"{key} is not {'a string' if kind is str else 'an object'}")


def event_store(event: dict) -> tuple[StripeEvent, bool]:
    """Store a verified event once; (row, created). Queues it for applying."""
    stored, created = StripeEvent.objects.get_or_create(
        stripe_id=event["id"],
        defaults={
            "type": event["type"],
            "livemode": bool(event.get("livemode")),
            "stripe_created": _moment(event["created"]),
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
    """The subscription the event is about, if any; raises EventMalformed when
    a field on the way is of the wrong kind (event_parse refuses such bodies)."""
    obj = event["data"]["object"]
    event_type = event["type"]
    if event_type in SUBSCRIPTION_EVENTS:
        subscription_id = _optional(obj, "id", str)
        if subscription_id is None:
            raise EventMalformed("data.object has no id")
        return subscription_id
    if event_type == "checkout.session.completed":
        return _optional(obj, "subscription", str) if obj.get("mode") == "subscription" else None
    if event_type in INVOICE_EVENTS:
        # In this API version an invoice names its subscription under `parent`.
        parent = _optional(obj, "parent", dict) or {}
        details = _optional(parent, "subscription_details", dict) or {}
        return _optional(details, "subscription", str)
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
    event_at = _moment(event["created"])
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
