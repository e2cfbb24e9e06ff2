"""The API on a Redis that hangs or goes away, through the request path,
against a private redis-server: after one failed call each process fails fast
(503) without waiting on Redis again until the backoff ends; serving resumes
once Redis answers; the outage is logged once, not per request."""

import logging

import pytest
import redis
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from rest_framework.test import APIClient

from apikeys.context import key_contexts
from apikeys.services import api_key_create
from core.breaker import breakers_reset
from metering import selectors
from tests.celery_worker import wait_for
from tests.metering.test_limiter_redis_faults import RedisServer

pytestmark = pytest.mark.django_db

ECHO = "/api/v1/echo"
REQUESTS = 20


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    cache = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
    with override_settings(REDIS_URL=url, CACHES={"default": cache}):
        key_contexts.clear()
        breakers_reset()  # django-redis keeps its pool per URL, and the next server may get this port
        yield server
    server.resume()
    server.kill()
    key_contexts.clear()
    breakers_reset()


@pytest.fixture
def client(customer, private_redis):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(customer=customer, name='ci').raw_key}")
    assert client.get(ECHO).status_code == 200
    return client


def commands_processed(server) -> int:
    return redis.Redis(port=server.port).info("stats")["total_commands_processed"]


def test_a_hung_redis_is_waited_on_once_then_every_request_fails_fast(client, private_redis):
    before = commands_processed(private_redis)
    private_redis.pause()  # SIGSTOP: connections open, no answer
    statuses = [client.get(ECHO).status_code for _ in range(REQUESTS)]
    private_redis.resume()
    assert statuses == [503] * REQUESTS
    # What reached Redis while it hung: one call, not two or more per request
    # (the key context version and the limiter each used to wait out their timeout).
    sent = commands_processed(private_redis) - before - 1  # -1: this INFO
    assert sent < REQUESTS / 4


def test_a_503_while_redis_is_down_says_when_to_retry(client, private_redis):
    private_redis.kill()
    response = client.get(ECHO)
    assert (response.status_code, response.json()["error"]) == (503, "rate_limiter_unavailable")
    assert response["Retry-After"] == "5"


def test_serving_resumes_once_redis_answers_again(client, private_redis):
    private_redis.pause()
    assert client.get(ECHO).status_code == 503
    private_redis.resume()
    wait_for(lambda: client.get(ECHO).status_code == 200, "serve again once Redis answers")


def test_an_outage_logs_one_line_as_it_starts_and_one_as_it_ends(client, private_redis, caplog):
    with caplog.at_level(logging.DEBUG):
        private_redis.pause()
        for _ in range(REQUESTS):
            client.get(ECHO)
        private_redis.resume()
        wait_for(lambda: client.get(ECHO).status_code == 200, "serve again once Redis answers")
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in errors] == ["ERROR", "WARNING"], [r.getMessage() for r in errors]
    assert "unreachable" in errors[0].getMessage() and "answers again" in errors[1].getMessage()
    assert not [r for r in caplog.records if r.exc_info], "no traceback per request"


def test_healthz_says_redis_is_unreachable_without_waiting_on_it_again(private_redis, client):
    private_redis.pause()
    assert client.get(ECHO).status_code == 503  # the first call that waited
    response = APIClient().get("/healthz")
    private_redis.resume()
    assert (response.status_code, response.json()["checks"]["redis"]) == (503, "unreachable")


@pytest.mark.urls("tests.metering.urls")
def test_a_view_that_finds_redis_hung_after_the_check_answers_503_not_500(
    customer, private_redis, monkeypatch
):
    """The usage API reads pending usage from Redis in its view: Redis hanging
    between the check and that read is a 503 with Retry-After."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(customer=customer, name='ci').raw_key}")
    assert client.get("/api/v1/usage").status_code == 200
    original = selectors.pending_usage_fields

    def after_a_stall(customer_id):
        private_redis.pause()
        return original(customer_id)

    monkeypatch.setattr(selectors, "pending_usage_fields", after_a_stall)
    response = client.get("/api/v1/usage")
    private_redis.resume()
    assert (response.status_code, response.json()["error"]) == (503, "redis_unavailable")
    assert response["Retry-After"] == "5"


def test_the_dashboard_with_redis_down_is_a_503_page_not_a_500(customer, private_redis, client):
    browser = Client()
    browser.force_login(get_user_model().objects.get(pk=customer.user_id))
    assert browser.get("/dashboard/").status_code == 200
    private_redis.kill()
    response = browser.get("/dashboard/")
    assert response.status_code == 503
    assert b"Temporarily unavailable" in response.content
