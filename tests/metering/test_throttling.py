"""Tier enforcement over HTTP: burst, quota, billing standing and Redis failures."""

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.context import customer_key_contexts, invalidate_key_contexts
from apikeys.services import api_key_create
from plans.models import Customer, SubscriptionStatus
from plans.services import tiers_sync

ECHO = "/api/v1/echo"
UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


@pytest.fixture
def set_limits(django_capture_on_commit_callbacks):
    """Change a customer's row and invalidate key contexts, as the services do."""

    def set_limits(customer, **fields):
        with django_capture_on_commit_callbacks(execute=True):
            Customer.objects.filter(pk=customer.pk).update(**fields)
            invalidate_key_contexts(customer_key_contexts([customer.pk]))

    return set_limits


@pytest.fixture
def redis_down():
    with override_settings(CACHES=UNREACHABLE_REDIS):
        yield


def client_for(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def statuses(client, count: int, path: str = ECHO) -> list[int]:
    return [client.get(path).status_code for _ in range(count)]


def seconds_to_month_end(now: float) -> int:
    start = datetime.fromtimestamp(now, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return math.ceil(end.timestamp() - now)


def customer_form(customer, **changes) -> dict:
    """The admin's change form for a customer, as the browser posts it."""
    form = {
        "user": customer.user_id,
        "tier": customer.tier_id,
        "quota_override": customer.quota_override or "",
        "burst_override": customer.burst_override or "",
        "stripe_customer_id": "",
        "stripe_subscription_id": "",
        "subscription_status": customer.subscription_status,
        "current_period_start_0": "",
        "current_period_start_1": "",
        "current_period_end_0": "",
        "current_period_end_1": "",
    }
    return {**form, **changes}


def test_a_free_key_is_refused_after_five_requests_in_one_second(key_client, clock):
    assert statuses(key_client, 6) == [200] * 5 + [429]


def test_a_burst_refusal_names_the_burst_limit_and_when_to_retry(key_client, clock):
    statuses(key_client, 5)
    response = key_client.get(ECHO)
    body = response.json()
    assert body.pop("detail")
    assert body.pop("reset_at")
    assert body == {"error": "burst_limit_exceeded", "limit": 5, "window": "second", "retry_after": 1}
    assert response["Retry-After"] == "1"


def test_the_burst_refills_after_a_second(key_client, clock):
    statuses(key_client, 6)
    clock.now += 1
    assert statuses(key_client, 5) == [200] * 5


def test_an_exhausted_quota_is_refused_with_quota_exceeded(key_client, customer, set_limits):
    set_limits(customer, quota_override=3, burst_override=1000)
    assert statuses(key_client, 4) == [200, 200, 200, 429]
    body = key_client.get(ECHO).json()
    assert (body["error"], body["limit"], body["window"]) == ("quota_exceeded", 3, "period")


def test_a_quota_refusal_retries_at_the_end_of_the_period(key_client, customer, set_limits, clock):
    set_limits(customer, quota_override=1, burst_override=1000)
    key_client.get(ECHO)
    response = key_client.get(ECHO)
    expected = seconds_to_month_end(clock.now)
    assert response["Retry-After"] == str(expected)
    assert response.json()["retry_after"] == expected


@pytest.mark.urls("tests.metering.urls")
def test_a_view_with_a_quota_cost_of_three_uses_three_units(key_client, customer, set_limits):
    set_limits(customer, quota_override=7, burst_override=1000)
    assert statuses(key_client, 3, "/api/v1/report") == [200, 200, 429]
    assert statuses(key_client, 2) == [200, 429]


@pytest.mark.urls("tests.metering.urls")
def test_an_unmetered_view_is_not_limited(key_client, customer, set_limits):
    set_limits(customer, quota_override=1)
    assert statuses(key_client, 10, "/api/v1/status") == [200] * 10
    assert statuses(key_client, 2) == [200, 429]


@pytest.mark.urls("tests.metering.urls")
def test_an_unmetered_view_gets_no_rate_limit_headers(key_client):
    response = key_client.get("/api/v1/status")
    assert response.status_code == 200
    assert not [name for name in response.headers if "ratelimit" in name.lower()]


def test_all_keys_of_a_customer_share_one_quota(key_client, customer, set_limits):
    set_limits(customer, quota_override=4, burst_override=1000)
    second = client_for(api_key_create(customer=customer, name="server").raw_key)
    assert statuses(key_client, 2) + statuses(second, 2) == [200] * 4
    assert (key_client.get(ECHO).status_code, second.get(ECHO).status_code) == (429, 429)


def test_all_keys_of_a_customer_share_one_burst(key_client, customer, clock):
    second = client_for(api_key_create(customer=customer, name="server").raw_key)
    assert statuses(key_client, 3) + statuses(second, 3) == [200] * 5 + [429]


def test_one_customers_exhausted_quota_does_not_refuse_another(
    key_client, customer, other_customer, set_limits
):
    set_limits(customer, quota_override=1, burst_override=1000)
    statuses(key_client, 2)
    bobs_client = client_for(api_key_create(customer=other_customer, name="bob").raw_key)
    assert bobs_client.get(ECHO).status_code == 200


def test_an_operators_quota_override_in_admin_takes_effect(
    admin_client, key_client, customer, django_capture_on_commit_callbacks
):
    assert key_client.get(ECHO).status_code == 200
    form = customer_form(customer, quota_override=2, burst_override=1000)
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(f"/admin/plans/customer/{customer.pk}/change/", form).status_code == 302
    assert statuses(key_client, 2) == [200, 429]
    assert key_client.get(ECHO).json()["limit"] == 2


def test_an_operators_burst_override_in_admin_takes_effect(
    admin_client, key_client, customer, clock, django_capture_on_commit_callbacks
):
    assert key_client.get(ECHO).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/plans/customer/{customer.pk}/change/", customer_form(customer, burst_override=2)
        )
    assert response.status_code == 302
    clock.now += 1
    assert statuses(key_client, 3) == [200, 200, 429]
    assert key_client.get(ECHO).json()["limit"] == 2


def test_a_tier_with_overage_admits_beyond_its_quota(
    key_client, customer, set_limits, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        tiers_sync(declared_tiers={"free": {"overage_price_per_1000": "0.50"}}, force=True)
    set_limits(customer, quota_override=2, burst_override=1000)
    assert statuses(key_client, 4) == [200] * 4


def test_a_tier_quota_change_through_tiers_sync_changes_enforcement(
    key_client, customer, set_limits, django_capture_on_commit_callbacks
):
    set_limits(customer, burst_override=1000)
    assert key_client.get(ECHO).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        tiers_sync(declared_tiers={"free": {"quota": 2}}, force=True)
    assert statuses(key_client, 2) == [200, 429]
    assert key_client.get(ECHO).json()["limit"] == 2


def test_a_tier_quota_change_in_admin_changes_enforcement(
    admin_client, key_client, customer, set_limits, default_tiers, django_capture_on_commit_callbacks
):
    set_limits(customer, burst_override=1000)
    assert key_client.get(ECHO).status_code == 200
    free = default_tiers["free"]
    form = {
        "slug": "free",
        "name": free.name,
        "is_public": "on",
        "is_active": "on",
        "display_order": free.display_order,
        "price": free.price,
        "currency": free.currency,
        "overage_price_per_1000": "",
        "stripe_price_id": "",
        "quota": "2",
        "quota_period": free.quota_period,
        "burst": free.burst,
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(f"/admin/plans/tier/{free.pk}/change/", form).status_code == 302
    assert statuses(key_client, 2) == [200, 429]


def test_an_unpaid_customer_gets_402_pointing_to_the_billing_page(key_client, customer, set_limits):
    set_limits(customer, subscription_status=SubscriptionStatus.UNPAID)
    response = key_client.get(ECHO)
    assert response.status_code == 402
    assert response.json()["error"] == "payment_required"
    assert response.json()["billing_url"] == f"http://testserver{settings.BILLING_PAGE_PATH}"


def test_a_customer_past_due_beyond_the_grace_period_gets_402(key_client, customer, set_limits):
    overdue = timezone.now() - timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS, hours=1)
    set_limits(customer, subscription_status=SubscriptionStatus.PAST_DUE, past_due_since=overdue)
    assert key_client.get(ECHO).status_code == 402


def test_a_customer_past_due_within_the_grace_period_is_served(key_client, customer, set_limits):
    due = timezone.now() - timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS - 1)
    set_limits(customer, subscription_status=SubscriptionStatus.PAST_DUE, past_due_since=due)
    assert key_client.get(ECHO).status_code == 200


def test_a_suspended_customers_refused_requests_use_no_quota(key_client, customer, set_limits):
    set_limits(customer, subscription_status=SubscriptionStatus.UNPAID, quota_override=1, burst_override=1000)
    statuses(key_client, 3)
    set_limits(customer, subscription_status=SubscriptionStatus.ACTIVE)
    assert key_client.get(ECHO).status_code == 200


def test_redis_unreachable_is_503_with_retry_after_by_default(key_client, redis_down):
    response = key_client.get(ECHO)
    assert response.status_code == 503
    assert response.json()["error"] == "rate_limiter_unavailable"
    assert response["Retry-After"] == str(settings.RATE_LIMIT_UNAVAILABLE_RETRY_AFTER)


@override_settings(RATE_LIMIT_FAIL_OPEN=True)
def test_redis_unreachable_admits_requests_when_failing_open(key_client, redis_down):
    assert statuses(key_client, 8) == [200] * 8


@override_settings(RATE_LIMIT_FAIL_OPEN=True)
def test_authentication_falls_back_to_the_database_while_redis_is_unreachable(
    api_client, api_key, revoked_key, redis_down
):
    revoked = api_client.get(ECHO, HTTP_AUTHORIZATION=f"Bearer {revoked_key.raw_key}")
    assert revoked.json()["error"] == "revoked_key"
    assert api_client.get(ECHO, HTTP_AUTHORIZATION=f"Bearer {api_key.raw_key}").status_code == 200


def test_a_quota_counter_lost_with_redis_is_restored_from_billed_usage(
    customer, api_key, api_client, set_limits
):
    from django_redis import get_redis_connection

    from metering.models import UsageRecord

    set_limits(customer, quota_override=10, burst_override=1000)
    UsageRecord.objects.create(
        customer=customer, api_key=api_key.api_key, endpoint="api:echo", hour=timezone.now(), count=9
    )
    get_redis_connection("default").flushdb()  # Redis restarted with nothing on disk
    assert api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key).status_code == 200
    assert api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key).json()["error"] == "quota_exceeded"


# Limits that read well (issue 16, item 5): the reset as a date and time, and
# the way out when a higher tier exists.


def month_end(now: float) -> datetime:
    return datetime.fromtimestamp(now + seconds_to_month_end(now), UTC)


def test_a_quota_refusal_gives_the_reset_as_an_iso_date_time_and_seconds(
    key_client, customer, set_limits, clock
):
    set_limits(customer, quota_override=1, burst_override=1000)
    key_client.get(ECHO)
    response = key_client.get(ECHO)
    body, reset = response.json(), month_end(clock.now)
    assert body["reset_at"] == reset.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["retry_after"] == int(response["Retry-After"]) == seconds_to_month_end(clock.now)
    assert f"resets on {reset.day} {reset:%B %Y at %H:%M} UTC" in body["detail"]
    assert " s." not in body["detail"]


def test_a_quota_refusal_on_the_free_tier_links_to_the_upgrade_to_pro(key_client, customer, set_limits):
    set_limits(customer, quota_override=1, burst_override=1000)
    key_client.get(ECHO)
    body = key_client.get(ECHO).json()
    assert body["upgrade_tier"] == "Pro"
    assert body["upgrade_url"] == f"http://testserver{settings.BILLING_PAGE_PATH}#billing"
    assert "Upgrade to Pro" in body["detail"]


def test_a_quota_refusal_on_the_highest_tier_offers_no_upgrade(other_customer, set_limits, default_tiers):
    Customer.objects.filter(pk=other_customer.pk).update(tier=default_tiers["enterprise"])
    set_limits(other_customer, quota_override=1, burst_override=1000)
    client = client_for(api_key_create(customer=other_customer, name="bob").raw_key)
    client.get(ECHO)
    body = client.get(ECHO).json()
    assert body["error"] == "quota_exceeded"
    assert "upgrade_url" not in body and "upgrade_tier" not in body


def test_a_burst_refusal_gives_its_reset_and_offers_no_upgrade(key_client, clock):
    statuses(key_client, 5)
    body = key_client.get(ECHO).json()
    reset = datetime.fromtimestamp(math.ceil(clock.now) + 1, UTC)
    assert body["reset_at"] == reset.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "upgrade_url" not in body
