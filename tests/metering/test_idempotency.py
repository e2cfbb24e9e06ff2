"""Idempotency-Key over HTTP (metering/idempotency.py): bound to the customer
and the request's fingerprint; a repeat gets the stored response, unbilled."""

import pytest
from django_redis import get_redis_connection
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apikeys.services import api_key_create
from metering import idempotency
from metering.keys import idempotency_record
from metering.limiter import get_limiter
from plans.models import Customer
from tests.metering.test_usage import ECHO, TOO_LONG, billed, client_for, memory_limiter, quota_used  # noqa: F401

PRIMES = "/api/v1/primes"
USAGE = "/api/v1/usage"


def test_a_repeat_gets_the_stored_response_marked_replayed(key_client):
    first = key_client.get(PRIMES, {"below": 100}, HTTP_IDEMPOTENCY_KEY="order-1")
    again = key_client.get(PRIMES, {"below": 100}, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (again.status_code, again.content, again["Content-Type"]) == (
        200,
        first.content,
        "application/json",
    )
    assert (first.get("Idempotent-Replayed"), again["Idempotent-Replayed"]) == (None, "true")


def test_a_repeat_carries_the_rate_limit_headers_of_now(key_client):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")["RateLimit-Policy"].startswith("5;w=1")


def test_a_repeat_is_neither_billed_nor_counted_against_the_quota(key_client, customer):
    for _ in range(3):
        key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (billed(customer), quota_used(customer)) == (1, 1)


def test_a_repeat_is_answered_with_the_quota_used_up(key_client, customer):
    Customer.objects.filter(pk=customer.pk).update(quota_override=1)
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 200


def test_a_repeat_counts_against_the_burst(key_client, customer, clock):
    Customer.objects.filter(pk=customer.pk).update(burst_override=1)
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 429


def test_one_key_on_another_request_gets_422_and_is_not_served(key_client):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    response = key_client.get(ECHO, {"a": "b"}, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (response.status_code, response.json()["error"]) == (422, "idempotency_key_reused")


def test_one_key_reused_on_150_requests_serves_and_bills_one(key_client, customer):
    """The finding: 150 different requests under one key were served, 1 billed."""
    Customer.objects.filter(pk=customer.pk).update(burst_override=1000)
    paths = [(ECHO, {"n": n}) for n in range(50)] + [(PRIMES, {"below": 2 + n}) for n in range(100)]
    statuses = [key_client.get(path, query, HTTP_IDEMPOTENCY_KEY="k").status_code for path, query in paths]
    assert (statuses.count(200), statuses.count(422), billed(customer)) == (1, 149, 1)


def test_one_key_cannot_get_past_a_quota_of_five(key_client, customer):
    """The finding: on a quota of 5, 30 requests with one key were all served."""
    Customer.objects.filter(pk=customer.pk).update(quota_override=5, burst_override=1000)
    statuses = [key_client.get(ECHO, {"n": n}, HTTP_IDEMPOTENCY_KEY="k").status_code for n in range(30)]
    assert statuses.count(200) == 1


def test_the_same_key_while_the_first_request_runs_gets_409_with_retry_after(key_client, customer):
    running = Request(APIRequestFactory().get(ECHO))
    idempotency.claim(running, customer.pk, "order-1", now_ms=0)
    response = key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (response.status_code, response.json()["error"]) == (409, "idempotency_key_in_use")
    assert 1 <= int(response["Retry-After"]) <= 60


def test_a_failed_first_attempt_is_not_stored_and_the_next_runs(key_client, customer):
    assert key_client.get(ECHO, TOO_LONG, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 400
    response = key_client.get(ECHO, TOO_LONG, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (response.status_code, response.get("Idempotent-Replayed")) == (400, None)
    assert (billed(customer), quota_used(customer)) == (0, 0)


def test_a_response_over_the_bound_is_served_and_billed_but_not_stored(key_client, customer, settings):
    settings.IDEMPOTENCY_MAX_STORED_BYTES = 10
    assert key_client.get(ECHO, {"msg": "long enough"}, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 200
    again = key_client.get(ECHO, {"msg": "long enough"}, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (again.status_code, again.json()["error"]) == (409, "idempotency_response_not_stored")
    assert billed(customer) == 1


def test_a_stored_response_is_kept_for_24_hours(key_client, customer):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    ttl = get_redis_connection("default").ttl(idempotency_record(customer.pk, "order-1"))
    assert 86_000 < ttl <= 86_400


def test_a_refused_request_frees_its_claim(key_client, customer):
    Customer.objects.filter(pk=customer.pk).update(quota_override=1)
    key_client.get(ECHO)
    assert key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 429
    assert get_redis_connection("default").exists(idempotency_record(customer.pk, "order-1")) == 0


def test_a_key_from_another_api_key_of_the_same_customer_is_replayed(key_client, customer):
    second = client_for(api_key_create(customer=customer, name="server").raw_key)
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert second.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")["Idempotent-Replayed"] == "true"


def test_a_key_longer_than_255_characters_gets_400(key_client):
    response = key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert (response.status_code, response.json()["error"]) == (400, "idempotency_key_invalid")


def test_the_usage_api_ignores_the_key(key_client):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert key_client.get(USAGE, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 200


@pytest.mark.usefixtures("memory_limiter")
def test_the_embedded_backend_replays_a_repeat(key_client):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")["Idempotent-Replayed"] == "true"


@pytest.mark.usefixtures("memory_limiter")
def test_the_embedded_backend_refuses_a_reused_key(key_client):
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert key_client.get(ECHO, {"a": "b"}, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 422


def test_an_idempotency_record_is_in_the_customers_slot(customer):
    assert f"{{c{customer.pk}}}" in idempotency_record(customer.pk, "order-1")


# The bounds are settings, on both backends


@pytest.fixture(params=["redis", "memory"])
def either_backend(request):
    if request.param == "memory":
        request.getfixturevalue("memory_limiter")


def test_the_stored_response_bound_is_a_setting(either_backend, key_client, customer, settings):
    settings.IDEMPOTENCY_MAX_STORED_BYTES = 10
    assert key_client.get(ECHO, {"a": "b"}, HTTP_IDEMPOTENCY_KEY="order-1").status_code == 200  # 20 bytes
    repeat = key_client.get(ECHO, {"a": "b"}, HTTP_IDEMPOTENCY_KEY="order-1")
    assert (repeat.status_code, repeat.json()["error"]) == (409, "idempotency_response_not_stored")
    assert "over 10 bytes" in repeat.json()["detail"]


def test_how_long_a_settled_key_is_kept_is_a_setting(key_client, customer, settings):
    settings.IDEMPOTENCY_KEY_TTL_SECONDS = 30
    key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert 0 < get_redis_connection("default").ttl(idempotency_record(customer.pk, "order-1")) <= 30


def test_how_long_a_claim_is_held_is_a_setting(customer, settings):
    settings.IDEMPOTENCY_CLAIM_SECONDS = 7
    get_limiter().claim(idempotency_record(customer.pk, "order-1"), fingerprint="f", token="t", now_ms=0)
    assert 0 < get_redis_connection("default").pttl(idempotency_record(customer.pk, "order-1")) <= 7000
