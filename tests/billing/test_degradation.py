"""Stripe slow or down, or the billing database unreachable: API traffic goes on."""

import time

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apikeys.context import key_contexts, version_key
from apikeys.services import api_key_create
from billing.models import EventStatus, StripeEvent
from plans.models import Customer, SubscriptionStatus

from .conftest import make_event
from .stripe_double import SERVER_ERROR

ECHO = "/api/v1/echo"


@pytest.mark.django_db
def test_api_traffic_never_calls_stripe_and_flows_while_stripe_is_down(
    deliver, stripe_double, stripe_tiers, stripe_customer, key_client
):
    stripe_double.fail("GET", "/v1/", SERVER_ERROR, times=1000)
    stripe_double.fail("POST", "/v1/", SERVER_ERROR, times=1000)
    subscription = stripe_double.add_subscription(
        customer=stripe_customer.stripe_customer_id,
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=int(time.time()),
        period_end=int(time.time()) + 86_400,
        metadata={"customer_id": str(stripe_customer.pk)},
    )
    assert deliver(make_event("customer.subscription.created", subscription)).status_code == 200
    assert StripeEvent.objects.get().status == EventStatus.FAILED  # kept for a retry

    before = len(stripe_double.requests)
    statuses = [key_client.get(ECHO).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert len(stripe_double.requests) == before  # the hot path never touches Stripe


@pytest.mark.django_db
def test_a_slow_stripe_does_not_slow_the_webhook_answer_beyond_the_task(
    deliver, stripe_double, stripe_tiers, stripe_customer
):
    """The endpoint stores and answers; a slow Stripe costs the task, which in
    production runs in a worker (eagerly here it shares the request)."""
    from saas.celery import app

    saved = app.conf.task_always_eager, app.conf.broker_url
    # Queued to an in-memory broker nothing consumes: the endpoint's own time.
    app.conf.task_always_eager, app.conf.broker_url = False, "memory://"
    try:
        stripe_double.delay("GET", "/v1/subscriptions/", seconds=5)
        started = time.monotonic()
        response = deliver(
            make_event("customer.subscription.created", {"id": "sub_x", "object": "subscription"})
        )
        elapsed = time.monotonic() - started
    finally:
        app.conf.task_always_eager, app.conf.broker_url = saved
    assert response.status_code == 200
    assert elapsed < 5
    assert StripeEvent.objects.get().status == EventStatus.RECEIVED


@pytest.fixture
def database_down():
    """Point this process's connection at a port where nothing listens."""
    saved = connection.settings_dict["PORT"]

    def stop():
        connection.close()
        connection.settings_dict["PORT"] = "1"

    yield stop
    connection.close()
    connection.settings_dict["PORT"] = saved


@pytest.mark.django_db(transaction=True)
def test_with_the_database_down_the_api_serves_the_last_known_state(default_tiers, database_down):
    customer = Customer.objects.get_or_create(
        user_id=_user("carol@example.com"),
        defaults={"tier": default_tiers["pro"], "subscription_status": SubscriptionStatus.ACTIVE},
    )[0]
    known = api_key_create(customer=customer, name="known").raw_key
    unknown = api_key_create(customer=customer, name="never used").raw_key
    client = APIClient()
    assert client.get(ECHO, HTTP_AUTHORIZATION=f"Bearer {known}").status_code == 200

    database_down()
    # A new process, after an invalidation: nothing cached but the last known state.
    key_contexts.clear()
    from django.core.cache import cache

    from apikeys.peppers import current_hash

    cache.set(version_key(current_hash(known)), "after-the-outage", timeout=None)
    response = client.get(ECHO, HTTP_AUTHORIZATION=f"Bearer {known}")
    assert response.status_code == 200
    assert "50000;w=" in response["RateLimit-Policy"]  # still the pro tier

    never_seen = client.get(ECHO, HTTP_AUTHORIZATION=f"Bearer {unknown}")
    assert never_seen.status_code == 503
    assert never_seen.json()["error"] == "database_unavailable"
    assert never_seen["Retry-After"] == "5"


def _user(email: str) -> int:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username=email, email=email).pk
