"""POST /billing/stripe/webhook/: verified, stored once, applied as Stripe's
current state (tasks run eagerly here; test_billing_worker.py runs them in a
real worker)."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from billing.models import EventStatus, StripeEvent
from plans.models import Customer, QuotaPeriod, SubscriptionStatus
from plans.periods import add_months, period_bounds
from tests.utils import utc

from .conftest import WEBHOOK_URL, make_event, sign

pytestmark = pytest.mark.django_db

PERIOD_START = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())
PERIOD_END = int(datetime(2026, 12, 20, tzinfo=UTC).timestamp())


def subscribe(double, customer, tier, **options):
    """A subscription in the Stripe double, as Checkout would have made it."""
    price_ids = [tier.stripe_price_id] + (
        [tier.stripe_overage_price_id] if tier.stripe_overage_price_id else []
    )
    return double.add_subscription(
        customer=customer.stripe_customer_id,
        price_ids=price_ids,
        period_start=PERIOD_START,
        period_end=PERIOD_END,
        metadata={"customer_id": str(customer.pk), "tier": tier.slug},
        **options,
    )


def completed_checkout(customer, subscription) -> dict:
    session = {
        "id": "cs_test_completed",
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "customer": customer.stripe_customer_id,
        "subscription": subscription["id"],
        "client_reference_id": str(customer.pk),
        "metadata": {"customer_id": str(customer.pk), "tier": "pro"},
    }
    return session


def fresh(customer) -> Customer:
    return Customer.objects.select_related("tier").get(pk=customer.pk)


# Signatures ---------------------------------------------------------------------


def test_a_delivery_without_a_signature_is_refused_and_not_stored(webhook_client, stripe_double):
    payload = json.dumps(make_event("invoice.paid", {"id": "in_1"})).encode()
    response = webhook_client.post(WEBHOOK_URL, payload, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_signature"
    assert not StripeEvent.objects.exists()


@pytest.mark.parametrize(
    "sign_options",
    [
        {"secret": "whsec_someone_else"},
        {"timestamp": int(time.time()) - 301},  # older than Stripe's default 5-minute tolerance
    ],
    ids=["wrong-secret", "stale"],
)
def test_a_bad_or_stale_signature_is_refused_and_not_stored(deliver, stripe_double, sign_options):
    response = deliver(make_event("invoice.paid", {"id": "in_1"}), **sign_options)
    assert response.status_code == 400
    assert "does not verify" in response.json()["detail"]
    assert not StripeEvent.objects.exists()


def test_a_body_changed_after_signing_is_refused(webhook_client, stripe_double):
    payload = json.dumps(make_event("invoice.paid", {"id": "in_1"})).encode()
    header = sign(payload)
    tampered = payload.replace(b"in_1", b"in_2")
    response = webhook_client.post(
        WEBHOOK_URL, tampered, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 400


def test_a_signed_body_that_is_not_json_is_refused(webhook_client, stripe_double):
    payload = b"not json"
    response = webhook_client.post(
        WEBHOOK_URL, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_event"


def test_without_a_webhook_secret_the_endpoint_answers_503(deliver, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = deliver(make_event("invoice.paid", {"id": "in_1"}))
    assert response.status_code == 503
    assert response.json()["error"] == "webhooks_not_configured"


def test_the_endpoint_only_takes_post(webhook_client, stripe_double):
    assert webhook_client.get(WEBHOOK_URL).status_code == 405


# Bodies that verify but are not Stripe events -----------------------------------------
# Stripe retries anything but a 2xx for three days: a body it signed that we can
# never store must be a 400 at once, never a 500, and leave nothing behind.


def _odd_event(**changes) -> dict:
    event = make_event("customer.subscription.updated", {"id": "sub_odd", "object": "subscription"})
    event.update(changes)
    return event


ODD_BODIES = {
    "a-json-array": lambda: [_odd_event()],
    "a-json-string": lambda: "evt_test_string",
    "created-as-a-string": lambda: _odd_event(created="1700000000"),
    "created-as-a-boolean": lambda: _odd_event(created=True),
    "created-past-year-9999": lambda: _odd_event(created=10**12),
    "id-over-255-characters": lambda: _odd_event(id="evt_" + "x" * 300),
    "id-as-a-number": lambda: _odd_event(id=12345),
    "id-empty": lambda: _odd_event(id=""),
    "type-over-100-characters": lambda: _odd_event(type="customer." + "x" * 100),
    "type-missing": lambda: {k: v for k, v in _odd_event().items() if k != "type"},
    "livemode-as-a-string": lambda: _odd_event(livemode="false"),
    "data-as-a-list": lambda: _odd_event(data=[]),
    "data-without-an-object": lambda: _odd_event(data={"previous_attributes": {}}),
    "a-nul-in-the-id": lambda: _odd_event(id="evt_test\u0000nul"),
    "a-nul-deep-in-the-object": lambda: make_event("plan.created", {"id": "plan_1", "nickname": "a\u0000b"}),
    "a-nul-in-a-key": lambda: make_event("plan.created", {"id": "plan_1", "metadata": {"k\u0000": "v"}}),
    "a-lone-surrogate": lambda: make_event("plan.created", {"id": "plan_1", "nickname": "\ud800"}),
    "not-a-number": lambda: make_event("plan.created", {"id": "plan_1", "amount": float("nan")}),
    "a-subscription-id-as-a-number": lambda: make_event("customer.subscription.updated", {"id": 7}),
    "an-invoice-parent-as-a-string": lambda: make_event("invoice.paid", {"id": "in_1", "parent": "sub_1"}),
    "checkout-metadata-as-a-list": lambda: make_event(
        "checkout.session.completed", {"id": "cs_1", "mode": "subscription", "metadata": ["1"]}
    ),
}


@pytest.fixture
def stripe_view_client():
    """As Stripe sees us: a 500 is an answer, not an exception in the test."""
    return Client(enforce_csrf_checks=True, raise_request_exception=False)


def post_signed(client: Client, payload: bytes):
    return client.post(
        WEBHOOK_URL, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload)
    )


@pytest.mark.parametrize("make_body", ODD_BODIES.values(), ids=ODD_BODIES.keys())
def test_a_signed_body_that_is_not_a_stripe_event_is_a_400_that_changes_nothing(
    stripe_view_client, stripe_double, stripe_customer, django_capture_on_commit_callbacks, make_body
):
    payload = json.dumps(make_body()).encode()
    with django_capture_on_commit_callbacks() as queued:
        response = post_signed(stripe_view_client, payload)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_event"
    assert not StripeEvent.objects.exists()
    assert queued == []
    assert fresh(stripe_customer).subscription_status == stripe_customer.subscription_status


def test_a_signed_body_nested_too_deep_for_the_parser_is_a_400(stripe_view_client, stripe_double):
    payload = b"[" * 100_000 + b"]" * 100_000
    response = post_signed(stripe_view_client, payload)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_event"
    assert not StripeEvent.objects.exists()


def test_a_body_that_is_not_utf8_is_refused_unverified(stripe_view_client, stripe_double):
    response = post_signed(stripe_view_client, b'{"id": "evt_\xff"}')
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_signature"
    assert not StripeEvent.objects.exists()


def test_a_bad_signature_is_still_told_apart_from_a_malformed_event(webhook_client, stripe_double):
    payload = json.dumps([1, 2]).encode()
    response = webhook_client.post(
        WEBHOOK_URL, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload, secret="x")
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_signature"


# Storing --------------------------------------------------------------------------


def test_an_unknown_event_type_is_stored_and_ignored(deliver, stripe_double):
    event = make_event("plan.created", {"id": "plan_1", "object": "plan"})
    response = deliver(event)
    assert response.status_code == 200
    assert response.json() == {"received": True, "id": event["id"], "duplicate": False}
    stored = StripeEvent.objects.get()
    assert (stored.type, stored.status) == ("plan.created", EventStatus.IGNORED)
    assert stored.payload == event


def test_a_repeated_delivery_is_answered_200_and_applied_once(
    deliver, stripe_double, stripe_tiers, stripe_customer
):
    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"])
    event = make_event("customer.subscription.created", subscription)
    assert deliver(event).json()["duplicate"] is False
    fetches = len(stripe_double.requests_to("GET", f"/v1/subscriptions/{subscription['id']}"))
    again = deliver(event)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert StripeEvent.objects.get().attempts == 1
    assert len(stripe_double.requests_to("GET", f"/v1/subscriptions/{subscription['id']}")) == fetches


# State transitions ---------------------------------------------------------------------


def test_checkout_completed_moves_the_customer_to_the_paid_tier(
    deliver, stripe_double, stripe_tiers, stripe_customer
):
    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"])
    deliver(make_event("checkout.session.completed", completed_checkout(stripe_customer, subscription)))
    customer = fresh(stripe_customer)
    assert customer.tier.slug == "pro"
    assert customer.subscription_status == SubscriptionStatus.ACTIVE
    assert customer.stripe_subscription_id == subscription["id"]
    assert customer.current_period_end == datetime.fromtimestamp(PERIOD_END, UTC)
    assert StripeEvent.objects.get().status == EventStatus.APPLIED


def test_checkout_completed_stores_the_stripe_customer_of_a_new_customer(
    deliver, stripe_double, stripe_tiers, customer
):
    stripe_id = stripe_double._create_customer({"email": "alice@example.com"})[1]["id"]
    subscription = stripe_double.add_subscription(
        customer=stripe_id,
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=PERIOD_START,
        period_end=PERIOD_END,
        metadata={"customer_id": str(customer.pk)},
    )
    session = {**completed_checkout(customer, subscription), "customer": stripe_id}
    deliver(make_event("checkout.session.completed", session))
    assert fresh(customer).stripe_customer_id == stripe_id
    assert fresh(customer).tier.slug == "pro"


def test_the_paid_tiers_quota_is_enforced_within_a_second(
    deliver, stripe_double, stripe_tiers, stripe_customer, key_client
):
    # The free tier's window is the calendar month it is now: 28 to 31 days.
    start, end = period_bounds(QuotaPeriod.MONTH, timezone.now())
    window = round((end - start).total_seconds())
    assert key_client.get("/api/v1/echo")["RateLimit-Policy"].endswith(f'1000;w={window};name="quota"')
    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"])
    deliver(make_event("customer.subscription.created", subscription))
    # No wait: applying the event bumps the key context version after commit,
    # which empties this process's cache at once. Other processes reload within
    # KEY_CONTEXT_TTL_SECONDS: tests/metering/test_enforcement_processes.py.
    assert "50000;w=" in key_client.get("/api/v1/echo")["RateLimit-Policy"]


def test_a_failed_payment_starts_the_grace_period_with_one_email(
    deliver, stripe_double, stripe_tiers, stripe_customer, key_client
):
    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"])
    deliver(make_event("customer.subscription.created", subscription))
    stripe_double.update_subscription(subscription["id"], status="past_due")
    invoice = {
        "id": "in_test_failed",
        "object": "invoice",
        "customer": stripe_customer.stripe_customer_id,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription["id"]},
        },
    }
    deliver(make_event("invoice.payment_failed", invoice))
    deliver(make_event("customer.subscription.updated", subscription))  # Stripe sends both
    customer = fresh(stripe_customer)
    assert (customer.tier.slug, customer.subscription_status) == ("pro", SubscriptionStatus.PAST_DUE)
    assert customer.past_due_since is not None
    assert [m.subject for m in mail.outbox] == ["Your payment failed: please update your payment method"]
    assert key_client.get("/api/v1/echo").status_code == 200  # within the grace period


def test_past_due_beyond_the_grace_period_answers_402(
    deliver, stripe_double, stripe_tiers, stripe_customer, key_client, settings
):
    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"], status="past_due")
    long_ago = int(time.time()) - (settings.BILLING_GRACE_PERIOD_DAYS * 86_400 + 60)
    deliver(make_event("customer.subscription.updated", subscription, created=long_ago))
    response = key_client.get("/api/v1/echo")
    assert response.status_code == 402
    assert response.json()["billing_url"].endswith(settings.BILLING_PAGE_PATH)


def test_unpaid_answers_402_at_once(deliver, stripe_double, stripe_tiers, stripe_customer, key_client):
    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"], status="unpaid")
    deliver(make_event("customer.subscription.updated", subscription))
    assert key_client.get("/api/v1/echo").status_code == 402


def test_a_paid_invoice_ends_the_past_due_state(deliver, stripe_double, stripe_tiers, stripe_customer):
    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"], status="past_due")
    deliver(make_event("customer.subscription.updated", subscription))
    stripe_double.update_subscription(subscription["id"], status="active")
    invoice = {
        "id": "in_test_paid",
        "object": "invoice",
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription["id"]},
        },
    }
    deliver(make_event("invoice.paid", invoice))
    customer = fresh(stripe_customer)
    assert (customer.subscription_status, customer.past_due_since) == (SubscriptionStatus.ACTIVE, None)


def test_cancellation_returns_the_customer_to_free_at_the_end_of_the_paid_period(
    deliver, stripe_double, stripe_tiers, stripe_customer
):
    now = int(time.time())
    period_end = now - 5  # the paid period has just ended
    subscription = stripe_double.add_subscription(
        customer=stripe_customer.stripe_customer_id,
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=int(add_months(datetime.fromtimestamp(period_end, UTC), -1).timestamp()),
        period_end=period_end,
        metadata={"customer_id": str(stripe_customer.pk)},
        cancel_at_period_end=True,
    )
    deliver(make_event("customer.subscription.updated", subscription, created=now - 10))
    customer = fresh(stripe_customer)
    assert (customer.tier.slug, customer.cancel_at_period_end) == ("pro", True)  # paid until the period ends

    stripe_double.update_subscription(subscription["id"], status="canceled", ended_at=period_end)
    deliver(make_event("customer.subscription.deleted", subscription))
    customer = fresh(stripe_customer)
    assert (customer.tier.slug, customer.subscription_status) == ("free", SubscriptionStatus.CANCELED)
    # A fresh free period starts where the paid one ended.
    assert customer.current_period_start == datetime.fromtimestamp(period_end, UTC)


def test_cancelling_mid_period_keeps_counting_the_period_in_progress(
    deliver, stripe_double, stripe_tiers, stripe_customer
):
    now = timezone.now()
    subscription = stripe_double.add_subscription(
        customer=stripe_customer.stripe_customer_id,
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=int((now - timedelta(days=3)).timestamp()),
        period_end=int(add_months(now - timedelta(days=3), 1).timestamp()),
        metadata={"customer_id": str(stripe_customer.pk)},
    )
    deliver(make_event("customer.subscription.created", subscription, created=int(now.timestamp()) - 10))
    paid_from = fresh(stripe_customer).current_period_start
    stripe_double.update_subscription(subscription["id"], status="canceled", ended_at=int(now.timestamp()))
    deliver(make_event("customer.subscription.deleted", subscription))
    customer = fresh(stripe_customer)
    assert customer.tier.slug == "free"
    assert customer.current_period_start == paid_from


def test_an_older_event_delivered_late_changes_nothing(deliver, stripe_double, stripe_tiers, stripe_customer):
    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"])
    created = make_event("customer.subscription.created", subscription, created=int(time.time()) - 60)
    stripe_double.update_subscription(subscription["id"], status="canceled", ended_at=int(time.time()))
    deleted = make_event("customer.subscription.deleted", subscription)
    deliver(deleted)
    deliver(created)  # out of order: the older event arrives last
    customer = fresh(stripe_customer)
    assert (customer.tier.slug, customer.subscription_status) == ("free", SubscriptionStatus.CANCELED)
    late = StripeEvent.objects.get(stripe_id=created["id"])
    assert late.status == EventStatus.IGNORED
    assert "newer" in late.error


def test_events_in_any_order_converge_on_stripes_current_state(
    deliver, stripe_double, stripe_tiers, stripe_customer
):
    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"], status="past_due")
    same_second = int(time.time())
    events = [
        make_event("customer.subscription.updated", subscription, created=same_second),
        make_event(
            "invoice.payment_failed",
            {"object": "invoice", "parent": {"subscription_details": {"subscription": subscription["id"]}}},
            created=same_second,
        ),
    ]
    stripe_double.update_subscription(subscription["id"], status="active")  # Stripe has moved on since
    for event in reversed(events):
        deliver(event)
    for event in events:
        deliver(event)  # and every one delivered twice
    assert fresh(stripe_customer).subscription_status == SubscriptionStatus.ACTIVE


def test_the_end_of_an_older_subscription_does_not_end_its_replacement(
    deliver, stripe_double, stripe_tiers, stripe_customer
):
    old = subscribe(
        stripe_double, stripe_customer, stripe_tiers["pro"], status="canceled", ended_at=PERIOD_START
    )
    new = subscribe(stripe_double, stripe_customer, stripe_tiers["enterprise"])
    deliver(make_event("customer.subscription.created", new))
    deliver(make_event("customer.subscription.deleted", old))
    assert fresh(stripe_customer).tier.slug == "enterprise"


def test_an_event_about_nobody_we_know_is_ignored(deliver, stripe_double, stripe_tiers):
    subscription = stripe_double.add_subscription(
        customer="cus_unknown",
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=PERIOD_START,
        period_end=PERIOD_END,
    )
    deliver(make_event("customer.subscription.created", subscription))
    stored = StripeEvent.objects.get()
    assert stored.status == EventStatus.IGNORED
    assert "no customer" in stored.error


def test_when_stripe_is_down_the_event_is_kept_as_failed_and_a_replay_applies_it(
    deliver, stripe_double, stripe_tiers, stripe_customer, admin_client, django_capture_on_commit_callbacks
):
    from .stripe_double import SERVER_ERROR

    subscription = subscribe(stripe_double, stripe_customer, stripe_tiers["pro"])
    stripe_double.fail("GET", "/v1/subscriptions/", SERVER_ERROR)
    response = deliver(make_event("customer.subscription.created", subscription))
    assert response.status_code == 200  # stored: Stripe's delivery succeeded
    stored = StripeEvent.objects.get()
    assert stored.status == EventStatus.FAILED
    assert "Something went wrong on Stripe's end" in stored.error
    assert fresh(stripe_customer).tier.slug == "free"

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/billing/stripeevent/", {"action": "replay", "_selected_action": [stored.pk]}
        )
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == (EventStatus.APPLIED, 2)
    assert fresh(stripe_customer).tier.slug == "pro"


def test_a_mid_period_upgrade_keeps_the_usage_counted_in_the_period(
    deliver, stripe_double, stripe_tiers, stripe_customer, key_client
):
    """Use it all on free, upgrade, downgrade: the quota never resets."""
    now = timezone.now().replace(microsecond=0)
    free_period_start = now - timedelta(days=10)
    Customer.objects.filter(pk=stripe_customer.pk).update(current_period_start=free_period_start)
    for _ in range(3):
        assert key_client.get("/api/v1/echo").status_code == 200
    subscription = stripe_double.add_subscription(
        customer=stripe_customer.stripe_customer_id,
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=int(now.timestamp()),
        period_end=int(add_months(now, 1).timestamp()),
        metadata={"customer_id": str(stripe_customer.pk)},
    )
    deliver(make_event("customer.subscription.created", subscription, created=int(now.timestamp()) - 10))
    customer = fresh(stripe_customer)
    assert customer.current_period_start == free_period_start
    usage = key_client.get("/api/v1/usage").json()
    assert (usage["tier"], usage["quota"], usage["used"]) == ("pro", 50000, 3)

    stripe_double.update_subscription(subscription["id"], status="canceled", ended_at=int(now.timestamp()))
    deliver(make_event("customer.subscription.deleted", subscription))
    usage = key_client.get("/api/v1/usage").json()
    assert (usage["tier"], usage["quota"], usage["used"]) == ("free", 1000, 3)


def test_the_whole_story_free_to_pro_to_grace_to_402_to_free_and_replays_change_nothing(
    deliver, stripe_double, stripe_tiers, customer, key_client, settings
):
    """Issue 5's done-means, in one run."""
    browser = Client()
    browser.force_login(customer.user)
    session_id = browser.post("/billing/checkout/", {"tier": "pro"})["Location"].rsplit("/", 1)[1]
    session = stripe_double.checkout_sessions[session_id]
    now = int(time.time())
    subscription = stripe_double.add_subscription(
        customer=session["customer"],
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=now,
        period_end=int(add_months(datetime.fromtimestamp(now, UTC), 1).timestamp()),
        metadata=session["metadata"],
    )
    session.update(status="complete", subscription=subscription["id"])
    events = [make_event("checkout.session.completed", session, created=now)]
    deliver(events[-1])
    assert "50000;w=" in key_client.get("/api/v1/echo")["RateLimit-Policy"]

    stripe_double.update_subscription(subscription["id"], status="past_due")
    events.append(make_event("customer.subscription.updated", subscription, created=now + 1))
    deliver(events[-1])
    assert key_client.get("/api/v1/echo").status_code == 200  # grace period
    overdue = timezone.now() - timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS, minutes=1)
    Customer.objects.filter(pk=customer.pk).update(past_due_since=overdue)
    invalidate_key_contexts_now()
    assert key_client.get("/api/v1/echo").status_code == 402

    stripe_double.update_subscription(subscription["id"], status="canceled", ended_at=now + 2)
    events.append(make_event("customer.subscription.deleted", subscription, created=now + 2))
    deliver(events[-1])
    response = key_client.get("/api/v1/echo")
    assert response.status_code == 200
    assert "1000;w=" in response["RateLimit-Policy"]

    settled = Customer.objects.values().get(pk=customer.pk)
    for event in reversed(events):  # replayed, newest first
        assert deliver(event).json()["duplicate"] is True
        deliver(dict(event, id=event["id"] + "_redelivered"))  # and as new deliveries, out of order
    assert Customer.objects.values().get(pk=customer.pk) == settled


def invalidate_key_contexts_now():
    from apikeys.context import key_contexts

    key_contexts.clear()
    from django.core.cache import cache

    cache.clear()


def renew(double, subscription: dict, start: datetime, end: datetime) -> None:
    """Stripe moves the subscription to its next period (the period lives on its items)."""
    for item in double.subscriptions[subscription["id"]]["items"]["data"]:
        item.update(current_period_start=int(start.timestamp()), current_period_end=int(end.timestamp()))


@pytest.mark.parametrize(
    ("stored", "renewed"),
    [
        ((utc(2026, 12, 31, 10), utc(2027, 1, 31, 10)), (utc(2027, 1, 31, 10), utc(2027, 2, 28, 10))),
        ((utc(2027, 12, 31, 10), utc(2028, 1, 31, 10)), (utc(2028, 1, 31, 10), utc(2028, 2, 29, 10))),
        ((utc(2027, 12, 1), utc(2028, 1, 1)), (utc(2028, 1, 1), utc(2028, 2, 1))),
    ],
    ids=["jan-31-to-feb-28", "jan-31-to-feb-29", "dec-31-to-jan-1"],
)
def test_a_renewal_arriving_late_keeps_the_quota_counted_since_the_new_period_began(
    deliver, stripe_double, stripe_tiers, stripe_customer, key_client, time_machine, stored, renewed
):
    subscription = stripe_double.add_subscription(
        customer=stripe_customer.stripe_customer_id,
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=int(stored[0].timestamp()),
        period_end=int(stored[1].timestamp()),
        metadata={"customer_id": str(stripe_customer.pk)},
    )
    Customer.objects.filter(pk=stripe_customer.pk).update(
        tier=stripe_tiers["pro"],
        subscription_status=SubscriptionStatus.ACTIVE,
        stripe_subscription_id=subscription["id"],
        current_period_start=stored[0],
        current_period_end=stored[1],
        quota_override=3,
        burst_override=1000,
    )
    window = round((renewed[1] - renewed[0]).total_seconds())
    time_machine.move_to(renewed[0] + timedelta(seconds=30), tick=False)  # Stripe renewed; we wait
    before = key_client.get("/api/v1/echo")
    renew(stripe_double, subscription, *renewed)
    deliver(make_event("customer.subscription.updated", subscription))
    after = key_client.get("/api/v1/echo")
    customer = fresh(stripe_customer)
    assert (customer.current_period_start, customer.current_period_end) == renewed
    assert [response["RateLimit-Remaining"] for response in (before, after)] == ["2", "1"]
    assert {response["RateLimit-Policy"] for response in (before, after)} == {
        f'1000;w=1;name="burst", 3;w={window};name="quota"'
    }
