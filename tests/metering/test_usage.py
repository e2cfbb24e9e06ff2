"""Billable usage over HTTP: what is billed, what is not, and quota given back.

A request is billed when it was admitted and answered 2xx (HEAD as the GET
it mirrors), except OPTIONS and a repeat under an Idempotency-Key the
customer already sent successfully (tests/metering/test_idempotency.py).
Every admitted request that is not billed gets its quota unit back. Billed
units are read from UsageRecord after a flush.
"""

from datetime import UTC, datetime

import pytest
from django.db.models import Sum
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from apikeys.services import api_key_create
from metering import limiter
from metering.flush import flush_usage
from metering.keys import hour_of, redis_key
from metering.limiter import MemoryLimiter
from metering.models import UsageRecord
from plans.models import Customer

ECHO = "/api/v1/echo"
USAGE = "/api/v1/usage"
TOO_LONG = {"msg": "x" * 1001}
metering_urls = pytest.mark.urls("tests.metering.urls")


def client_for(raw_key: str, **options) -> APIClient:
    client = APIClient(**options)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def quota_key(customer) -> str:
    """The calendar month's quota counter (the personas have no billing period)."""
    month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return redis_key("quota", customer.pk, int(month_start.timestamp()))


def quota_used(customer) -> int:
    return int(get_redis_connection("default").get(quota_key(customer)) or 0)


def recorded(customer) -> int:
    return UsageRecord.objects.filter(customer=customer).aggregate(total=Sum("count"))["total"] or 0


def billed(customer) -> int:
    """Units in PostgreSQL once everything pending in Redis is flushed."""
    flush_usage()
    return recorded(customer)


@pytest.fixture
def bob_client(other_customer):
    return client_for(api_key_create(customer=other_customer, name="bob's laptop").raw_key)


@pytest.fixture
def memory_limiter(monkeypatch, settings):
    """The embedded backend (no REDIS_URL), with a limiter of its own."""
    fresh = MemoryLimiter()
    monkeypatch.setattr(limiter, "_memory_limiter", fresh)
    settings.REDIS_URL = ""
    return fresh


def memory_quota_used(memory: MemoryLimiter, customer) -> int:
    return int(memory._get(quota_key(customer), int(datetime.now(UTC).timestamp() * 1000)) or 0)


def test_a_successful_request_is_billed(key_client, customer):
    assert key_client.get(ECHO).status_code == 200
    assert billed(customer) == 1


def test_a_successful_request_keeps_its_quota_unit(key_client, customer):
    key_client.get(ECHO)
    assert quota_used(customer) == 1


def test_a_billed_request_is_recorded_under_its_key_endpoint_and_hour(key_client, customer, api_key):
    key_client.get(ECHO)
    flush_usage()
    record = UsageRecord.objects.get(customer=customer)
    hour = datetime.fromtimestamp(hour_of(int(datetime.now(UTC).timestamp() * 1000)), UTC)
    assert (record.api_key_id, record.endpoint, record.hour, record.count) == (
        api_key.api_key.pk,
        "api:echo",
        hour,
        1,
    )


@metering_urls
def test_a_201_is_billed(key_client, customer):
    assert key_client.post("/api/v1/widgets").status_code == 201
    assert billed(customer) == 1


def test_a_400_is_not_billed(key_client, customer):
    assert key_client.get(ECHO, TOO_LONG).status_code == 400
    assert billed(customer) == 0


def test_a_400_gives_its_quota_unit_back(key_client, customer):
    key_client.get(ECHO)
    key_client.get(ECHO, TOO_LONG)
    assert quota_used(customer) == 1


def test_a_request_without_a_key_is_not_billed_and_reserves_nothing(api_client, customer):
    assert api_client.get(ECHO).status_code == 401
    assert (billed(customer), quota_used(customer)) == (0, 0)


def test_a_revoked_key_is_not_billed_and_reserves_nothing(revoked_key, customer):
    assert client_for(revoked_key.raw_key).get(ECHO).status_code == 401
    assert (billed(customer), quota_used(customer)) == (0, 0)


@metering_urls
def test_a_404_from_a_view_is_not_billed(key_client, customer):
    assert key_client.get("/api/v1/missing").status_code == 404
    assert billed(customer) == 0


@metering_urls
def test_a_404_from_a_view_gives_its_quota_unit_back(key_client, customer):
    key_client.get(ECHO)
    key_client.get("/api/v1/missing")
    assert quota_used(customer) == 1


def test_an_unknown_api_path_is_not_billed_and_reserves_nothing(key_client, customer):
    assert key_client.get("/api/v1/nowhere").status_code == 404
    assert (billed(customer), quota_used(customer)) == (0, 0)


@metering_urls
def test_a_500_is_not_billed(key_client, customer):
    assert key_client.get("/api/v1/broken").status_code == 500
    assert billed(customer) == 0


@metering_urls
def test_a_500_gives_its_quota_unit_back(key_client, customer):
    key_client.get(ECHO)
    key_client.get("/api/v1/broken")
    assert quota_used(customer) == 1


@metering_urls
def test_a_view_that_raises_is_not_billed_and_gives_its_unit_back(api_key, customer):
    client = client_for(api_key.raw_key, raise_request_exception=False)
    client.get(ECHO)
    assert client.get("/api/v1/crashing").status_code == 500
    assert (billed(customer), quota_used(customer)) == (1, 1)


def test_a_head_request_is_billed_as_the_get_it_mirrors(key_client, customer):
    """HEAD runs the whole GET view: it costs what the GET costs."""
    assert key_client.head(ECHO).status_code == 200
    assert (billed(customer), quota_used(customer)) == (1, 1)


@metering_urls
def test_a_head_request_uses_the_quota_units_of_its_get(key_client, customer):
    assert key_client.head("/api/v1/report").status_code == 200
    assert (billed(customer), quota_used(customer)) == (3, 3)


def test_a_head_request_is_refused_once_the_quota_is_used_up(key_client, customer):
    Customer.objects.filter(pk=customer.pk).update(quota_override=5, burst_override=1000)
    statuses = [key_client.head("/api/v1/primes", {"below": 1000}).status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    assert billed(customer) == 5


def test_a_failed_head_request_is_not_billed(key_client, customer):
    assert key_client.head(ECHO, TOO_LONG).status_code == 400
    assert (billed(customer), quota_used(customer)) == (0, 0)


def test_an_options_request_is_not_billed(key_client, customer):
    assert key_client.options(ECHO).status_code == 200
    assert billed(customer) == 0


@metering_urls
def test_an_options_request_does_not_run_the_view(key_client, customer):
    assert key_client.options("/api/v1/crashing").status_code == 200
    assert (billed(customer), quota_used(customer)) == (0, 0)


def test_an_options_request_is_answered_with_the_quota_used_up(key_client, customer):
    Customer.objects.filter(pk=customer.pk).update(quota_override=1)
    key_client.get(ECHO)
    assert key_client.options(ECHO).status_code == 200


def test_an_options_request_gives_its_quota_unit_back(key_client, customer):
    key_client.get(ECHO)
    key_client.options(ECHO)
    assert quota_used(customer) == 1


def test_a_health_check_never_reaches_metering(key_client):
    response = key_client.get("/healthz")
    assert response.status_code == 200
    assert "RateLimit-Policy" not in response
    assert get_redis_connection("default").keys("metering:*") == []


def test_the_usage_view_is_not_billed(key_client, customer):
    assert key_client.get(USAGE).status_code == 200
    assert billed(customer) == 0


def test_the_usage_view_gives_its_quota_unit_back(key_client, customer):
    key_client.get(ECHO)
    key_client.get(USAGE)
    assert quota_used(customer) == 1


@metering_urls
def test_a_call_costing_three_units_bills_three(key_client, customer):
    assert key_client.get("/api/v1/report").status_code == 200
    assert (billed(customer), quota_used(customer)) == (3, 3)


def test_a_retry_with_a_seen_idempotency_key_is_served(key_client):
    key_client.get(ECHO, {"a": "b"}, HTTP_IDEMPOTENCY_KEY="order-1")
    response = key_client.get(ECHO, {"a": "b"}, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (response.status_code, response.json()) == (200, {"query": {"a": "b"}})


def test_a_retry_with_a_seen_idempotency_key_is_not_billed_again(key_client, customer):
    for _ in range(3):
        key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert billed(customer) == 1


def test_a_retry_with_a_seen_idempotency_key_gives_its_quota_unit_back(key_client, customer):
    for _ in range(3):
        key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert quota_used(customer) == 1


def test_different_idempotency_keys_are_each_billed(key_client, customer):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-2")
    assert billed(customer) == 2


def test_a_retry_through_another_key_of_the_same_customer_is_not_billed(key_client, customer):
    second = client_for(api_key_create(customer=customer, name="server").raw_key)
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert second.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 200
    assert billed(customer) == 1


def test_the_same_idempotency_key_from_another_customer_is_billed(key_client, bob_client, other_customer):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert bob_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 200
    assert billed(other_customer) == 1


def test_a_failed_first_attempt_leaves_the_retry_billable(key_client, customer):
    assert key_client.get(ECHO, TOO_LONG, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 400
    assert key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 200
    assert billed(customer) == 1


@metering_urls
def test_a_retry_of_a_call_costing_three_gives_all_three_back(key_client, customer):
    key_client.get("/api/v1/report", HTTP_IDEMPOTENCY_KEY="report-1")
    key_client.get("/api/v1/report", HTTP_IDEMPOTENCY_KEY="report-1")
    assert (billed(customer), quota_used(customer)) == (3, 3)


def test_an_empty_idempotency_key_does_not_make_requests_retries(key_client, customer):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="")
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="")
    assert billed(customer) == 2


def test_many_successful_requests_are_each_billed(key_client, customer):
    Customer.objects.filter(pk=customer.pk).update(burst_override=1000)
    for _ in range(20):
        key_client.get(ECHO)
    assert (billed(customer), quota_used(customer)) == (20, 20)


def test_the_embedded_backend_writes_usage_straight_to_the_database(memory_limiter, key_client, customer):
    key_client.get(ECHO)
    assert recorded(customer) == 1


def test_the_embedded_backend_does_not_bill_a_400(memory_limiter, key_client, customer):
    key_client.get(ECHO, TOO_LONG)
    assert recorded(customer) == 0


def test_the_embedded_backend_answers_a_400_with_400(memory_limiter, api_key):
    client = client_for(api_key.raw_key, raise_request_exception=False)
    assert client.get(ECHO, TOO_LONG).status_code == 400


def test_the_embedded_backend_gives_a_400s_unit_back(memory_limiter, key_client, customer):
    key_client.get(ECHO)
    key_client.get(ECHO, TOO_LONG)
    assert memory_quota_used(memory_limiter, customer) == 1


def test_the_embedded_backend_does_not_bill_a_retry(memory_limiter, key_client, customer):
    for _ in range(3):
        key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (recorded(customer), memory_quota_used(memory_limiter, customer)) == (1, 1)


def test_the_embedded_backend_bills_a_retry_after_a_failed_first_attempt(
    memory_limiter, key_client, customer
):
    key_client.get(ECHO, TOO_LONG, HTTP_IDEMPOTENCY_KEY="order-1")
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert recorded(customer) == 1


def test_the_embedded_backend_bills_the_same_idempotency_key_from_another_customer(
    memory_limiter, key_client, bob_client, other_customer
):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    bob_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert recorded(other_customer) == 1


def test_the_embedded_backend_leaves_nothing_in_redis(memory_limiter, key_client):
    key_client.get(ECHO)
    assert get_redis_connection("default").keys("metering:*") == []
