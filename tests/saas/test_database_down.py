"""PostgreSQL down (its port refused by the fault proxy): 503s, never 500s; cached keys still served."""

import logging

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from apikeys import authentication
from apikeys.context import KeyContextCache
from apikeys.last_used import last_used_writer
from apikeys.services import api_key_create
from tests.celery_worker import wait_for
from tests.faults.postgres import default_connection_through, postgres_proxy
from tests.utils import FakeClock

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "/api/v1/echo"
USAGE = "/api/v1/usage"


@pytest.fixture
def proxy(transactional_db):
    with postgres_proxy() as proxy, default_connection_through(proxy):
        yield proxy


def test_the_usage_api_answers_503_with_retry_after(proxy, key_client):
    assert key_client.get(USAGE).status_code == 200
    proxy.refuse()
    response = key_client.get(USAGE)
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    assert response["Retry-After"] == str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)


def test_the_pricing_page_answers_a_503_page_with_retry_after(proxy, client, default_tiers):
    assert client.get("/pricing/").status_code == 200
    proxy.refuse()
    response = client.get("/pricing/")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert b"Temporarily unavailable" in response.content
    assert response["Retry-After"] == str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)


def test_a_signed_in_page_answers_503_rather_than_500(proxy, client, customer):
    client.force_login(get_user_model().objects.get(pk=customer.user_id))
    assert client.get("/dashboard/").status_code == 200
    proxy.refuse()
    assert client.get("/dashboard/").status_code == 503


def test_a_page_asked_for_json_gets_a_json_503(proxy, client, default_tiers):
    proxy.refuse()
    response = client.get("/pricing/", HTTP_ACCEPT="application/json")
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


def test_a_cached_key_is_still_served(proxy, key_client):
    assert key_client.get(ECHO).status_code == 200
    proxy.refuse()
    assert key_client.get(ECHO).status_code == 200


def test_a_key_never_seen_answers_503_database_unavailable(proxy, customer):
    raw_key = api_key_create(customer=customer, name="never used").raw_key
    proxy.refuse()
    response = APIClient().get(ECHO, HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    assert response["Retry-After"] == str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)


@pytest.fixture
def clock(monkeypatch):
    """The process's key contexts on a clock the test moves."""
    clock = FakeClock()
    monkeypatch.setattr(authentication, "key_contexts", KeyContextCache(ttl=1.0, clock=clock))
    return clock


def test_a_last_used_write_that_fails_does_not_fail_the_request(proxy, key_client, clock):
    assert key_client.get(ECHO).status_code == 200
    proxy.refuse()
    assert key_client.get(ECHO).status_code == 200
    assert last_used_writer.wait_until_idle(30)  # its write tried, and failed, in its own thread
    assert key_client.get(ECHO).status_code == 200


def test_an_outage_logs_one_line_as_it_starts_and_one_as_it_ends(proxy, client, default_tiers, caplog):
    """Not a line (nor a traceback) per refused request: the breaker's two lines."""
    assert client.get("/pricing/").status_code == 200
    with caplog.at_level(logging.DEBUG):
        proxy.refuse()
        connection.close()  # cut by the refusal: a server closes it after the request it failed
        assert [client.get("/pricing/").status_code for _ in range(20)] == [503] * 20
        proxy.forward()
        wait_for(lambda: client.get("/pricing/").status_code == 200, "serve once PostgreSQL answers")
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in loud] == ["ERROR", "WARNING"], [r.getMessage() for r in loud]
    assert "unreachable" in loud[0].getMessage() and "answers again" in loud[1].getMessage()
    assert not [r for r in caplog.records if r.exc_info]
