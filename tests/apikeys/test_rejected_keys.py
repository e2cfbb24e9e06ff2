"""Unknown and revoked keys: remembered as rejected by every process (the shared
cache), so a repeated bad key costs no SQL; a key's creation forgets its hash."""

import secrets
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys import context as context_module
from apikeys.context import KeyContextCache, invalidate_key_contexts, key_contexts
from apikeys.keys import generate_key
from apikeys.models import APIKey
from apikeys.peppers import current_hash
from apikeys.services import api_key_create
from tests.apikeys.test_context import TTL, UNREACHABLE_REDIS, SpyCache
from tests.utils import FakeClock

# The shared layer on a single Redis and on a Redis Cluster (tests/redis_cluster.py).
pytestmark = pytest.mark.usefixtures("redis_layout")

ECHO = "/api/v1/echo"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(autouse=True)
def no_failed_authentication_limit(settings):
    """These tests send many bad keys from one address: the limit is tested apart."""
    settings.FAILED_AUTH_LIMIT = 1_000_000


def made_up_key() -> str:
    return generate_key(settings.API_KEY_PREFIX)


def error_of(response):
    return response.status_code, response.json()["error"]


@pytest.fixture
def patient_redis(settings):
    """Redis timeouts of seconds, not 200 ms: 20,000 lookups on a loaded
    machine may meet one slow reply, which would rightly go to the database
    and make the query count below a matter of timing."""
    default = settings.CACHES["default"]
    options = {**default["OPTIONS"], "SOCKET_TIMEOUT": 5, "SOCKET_CONNECT_TIMEOUT": 5}
    settings.CACHES = {**settings.CACHES, "default": {**default, "OPTIONS": options}}


# On the single Redis only: 30 s a run, and the keys it reads are those the
# cluster runs of the other tests read.
@pytest.mark.parametrize("redis_layout", ["single Redis"], indirect=True)
def test_ten_thousand_unknown_keys_cost_no_sql_after_the_first_sight_of_each(db, clock, patient_redis):
    hashes = [secrets.token_hex(32) for _ in range(10_000)]
    first_process = KeyContextCache(ttl=TTL, clock=clock)
    assert all(first_process.get(hashed) is None for hashed in hashes)

    other_process = KeyContextCache(ttl=TTL, clock=clock)
    with CaptureQueriesContext(connection) as queries:
        assert all(other_process.get(hashed) is None for hashed in hashes)
    assert len(queries) == 0


def test_a_rejection_is_kept_in_the_process_for_rejected_key_cache_seconds(db, clock, settings, monkeypatch):
    settings.REJECTED_KEY_CACHE_SECONDS = 60
    spy = SpyCache(context_module.cache)
    monkeypatch.setattr(context_module, "cache", spy)
    hashed = secrets.token_hex(32)
    contexts = KeyContextCache(ttl=TTL, clock=clock)
    contexts.get(hashed)
    clock.now += 59
    spy.reads.clear()
    contexts.get(hashed)
    assert context_module.rejected_key(hashed) not in spy.reads
    clock.now += 1
    contexts.get(hashed)
    assert context_module.rejected_key(hashed) in spy.reads


def test_an_unknown_key_seen_by_one_process_is_a_401_without_sql_in_another(
    api_client, db, django_assert_num_queries
):
    made_up = [made_up_key() for _ in range(20)]
    for key in made_up:
        api_client.get(ECHO, HTTP_X_API_KEY=key)
    key_contexts.clear()  # as another process
    with django_assert_num_queries(0):
        answers = {error_of(api_client.get(ECHO, HTTP_X_API_KEY=key)) for key in made_up}
    assert answers == {(401, "unknown_key")}


def test_a_revoked_key_is_a_401_without_sql_after_the_versions_change(
    api_client, revoked_key, django_assert_num_queries, django_capture_on_commit_callbacks
):
    assert error_of(api_client.get(ECHO, HTTP_X_API_KEY=revoked_key.raw_key)) == (401, "revoked_key")
    with django_capture_on_commit_callbacks(execute=True):
        invalidate_key_contexts(APIKey.objects.all())  # any tier or billing change: contexts reload
    key_contexts.clear()  # and in another process
    with django_assert_num_queries(0):
        response = api_client.get(ECHO, HTTP_X_API_KEY=revoked_key.raw_key)
    assert error_of(response) == (401, "revoked_key")


def test_a_key_created_after_its_hash_was_rejected_works_at_once(
    api_client, customer, monkeypatch, clock, django_capture_on_commit_callbacks
):
    raw_key = made_up_key()
    assert error_of(api_client.get(ECHO, HTTP_X_API_KEY=raw_key)) == (401, "unknown_key")
    other_process = KeyContextCache(ttl=TTL, clock=clock)
    hashed = current_hash(raw_key)
    assert other_process.get(hashed) is None

    monkeypatch.setattr("apikeys.services.keys.generate_key", lambda prefix: raw_key)
    with django_capture_on_commit_callbacks(execute=True):
        api_key_create(customer=customer, name="after the guess")

    assert api_client.get(ECHO, HTTP_X_API_KEY=raw_key).status_code == 200
    assert KeyContextCache(ttl=TTL, clock=clock).get(hashed).customer_id == customer.pk


def test_a_flood_of_unknown_keys_does_not_evict_a_working_keys_context(api_key, clock, monkeypatch):
    monkeypatch.setattr(context_module, "LOCAL_MAX_ENTRIES", 3)
    spy = SpyCache(context_module.cache)
    monkeypatch.setattr(context_module, "cache", spy)
    contexts = KeyContextCache(ttl=TTL, clock=clock)
    hashed = current_hash(api_key.raw_key)
    contexts.get(hashed)
    for _ in range(10):
        contexts.get(secrets.token_hex(32))
    spy.reads.clear()
    assert contexts.get(hashed).key_id == api_key.api_key.pk
    assert spy.reads == []


def test_a_rejected_key_is_shared_for_rejected_key_cache_seconds(db, clock, settings):
    settings.REJECTED_KEY_CACHE_SECONDS = 1
    hashed = secrets.token_hex(32)
    KeyContextCache(ttl=TTL, clock=clock).get(hashed)
    ttl = context_module.cache.ttl(context_module.rejected_key(hashed))
    assert 0 < ttl <= 1


def test_an_expired_key_is_not_rejected_for_good(api_client, expired_key, django_capture_on_commit_callbacks):
    """Unlike a revocation, an expiry can be moved (admin), so it is not a rejection."""
    assert error_of(api_client.get(ECHO, HTTP_X_API_KEY=expired_key.raw_key)) == (401, "expired_key")
    with django_capture_on_commit_callbacks(execute=True):
        APIKey.objects.filter(pk=expired_key.api_key.pk).update(expires_at=timezone.now() + timedelta(days=1))
        invalidate_key_contexts(APIKey.objects.filter(pk=expired_key.api_key.pk))
    key_contexts.clear()
    assert api_client.get(ECHO, HTTP_X_API_KEY=expired_key.raw_key).status_code == 200


@override_settings(CACHES=UNREACHABLE_REDIS)
@pytest.mark.parametrize("kind", ["malformed", "unknown", "revoked"])
def test_with_redis_down_a_bad_key_is_still_a_401(api_client, revoked_key, kind):
    raw_key = {
        "malformed": revoked_key.raw_key[:-1] + ("A" if revoked_key.raw_key[-1] != "A" else "B"),
        "unknown": made_up_key(),
        "revoked": revoked_key.raw_key,
    }[kind]
    for _ in range(3):
        assert error_of(api_client.get(ECHO, HTTP_X_API_KEY=raw_key)) == (401, f"{kind}_key")


@override_settings(CACHES=UNREACHABLE_REDIS)
def test_with_redis_down_an_unknown_key_is_looked_up_in_the_database(
    api_client, db, django_assert_num_queries
):
    raw_key = made_up_key()
    api_client.get(ECHO, HTTP_X_API_KEY=raw_key)
    key_contexts.clear()
    with django_assert_num_queries(1):
        assert error_of(api_client.get(ECHO, HTTP_X_API_KEY=raw_key)) == (401, "unknown_key")
