"""Billing fixtures: a loopback Stripe, signed webhooks, paid tiers in Stripe."""

import hashlib
import hmac
import json
import time
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from billing.sync import catalog_sync_queue
from billing.tasks import run_stripe_sync
from plans.models import Customer, Tier

from .stripe_double import StripeDouble, fixture

WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
WEBHOOK_URL = "/billing/stripe/webhook/"


@pytest.fixture
def stripe_double(settings):
    double = StripeDouble().start()
    settings.STRIPE_SECRET_KEY = "sk_test_double"
    settings.STRIPE_API_BASE = double.url
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_TIMEOUT_SECONDS = 1.0
    yield double
    double.stop()


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header, computed the way Stripe computes it: HMAC-SHA256
    of "<timestamp>.<body>" with the endpoint's secret, as the v1 scheme."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


_event_ids = iter(range(1, 1_000_000))


def make_event(event_type: str, obj: dict, *, created: int | None = None) -> dict:
    """Stripe's example event, about `obj`."""
    event = fixture("event")
    event.update(
        id=f"evt_test{next(_event_ids):06d}",
        type=event_type,
        created=int(time.time()) if created is None else created,
        api_version="2026-10-28.endive",
        data={"object": obj, "previous_attributes": {}},
    )
    return event


def post_event(client: Client, event: dict, **sign_options):
    payload = json.dumps(event).encode()
    return client.post(
        WEBHOOK_URL,
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, **sign_options),
    )


@pytest.fixture
def webhook_client():
    return Client(enforce_csrf_checks=True)  # as Stripe calls it: no CSRF token


@pytest.fixture
def deliver(webhook_client, django_capture_on_commit_callbacks):
    """Deliver a signed event as Stripe does, running what the request queued
    after commit (the task applying the event, eagerly here) as a real commit would."""

    def send(event: dict, **sign_options):
        with django_capture_on_commit_callbacks(execute=True):
            return post_event(webhook_client, event, **sign_options)

    return send


@pytest.fixture
def overage_tier(default_tiers):
    return Tier.objects.create(
        slug="scale",
        name="Scale",
        price=Decimal("49.00"),
        quota=10,
        quota_period="month",
        burst=100,
        overage_price_per_1000=Decimal("2.00"),
    )


@pytest.fixture
def stripe_tiers(stripe_double, default_tiers, overage_tier):
    """Every paid tier synced to the Stripe double (ids stored on the tiers)."""
    for tier in Tier.objects.filter(price__gt=0):
        run_stripe_sync.apply(args=[catalog_sync_queue(tier).pk]).get()
    return {tier.slug: tier for tier in Tier.objects.all()}


@pytest.fixture
def stripe_customer(customer, stripe_double):
    """Alice with a Stripe customer."""
    stripe_customer = stripe_double._create_customer({"email": customer.user.email})[1]
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_customer["id"])
    customer.refresh_from_db()
    return customer


@pytest.fixture
def browser(customer):
    """Alice, logged in to the site."""
    client = Client()
    client.force_login(customer.user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]
