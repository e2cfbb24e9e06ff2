"""The key context cache: process dict, shared cache, database, with an injectable clock."""

from datetime import UTC, datetime

import pytest
from django.test import override_settings
from django_redis import get_redis_connection
from redis.crc import key_slot as crc_key_slot

from apikeys import context as context_module
from apikeys.context import (
    KeyContextCache,
    customer_key_contexts,
    invalidate_key_contexts,
    version_key,
)
from apikeys.last_used import last_used_writer
from apikeys.models import APIKey
from apikeys.peppers import current_hash
from apikeys.services import api_key_create, api_key_revoke
from plans.models import Tier
from plans.signals import limits_changed
from tests.utils import FakeClock

# The shared layer on a single Redis and on a Redis Cluster (tests/redis_cluster.py).
pytestmark = pytest.mark.usefixtures("redis_layout")

TTL = 1.0
UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


class SpyCache:
    """The shared cache, remembering every key read from it."""

    def __init__(self, real):
        self.real = real
        self.reads = []

    def get(self, key, *args, **kwargs):
        self.reads.append(key)
        return self.real.get(key, *args, **kwargs)

    def get_many(self, keys, *args, **kwargs):
        self.reads.extend(keys)
        return self.real.get_many(keys, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def contexts(clock):
    return KeyContextCache(ttl=TTL, clock=clock)


@pytest.fixture
def shared(monkeypatch):
    spy = SpyCache(context_module.cache)
    monkeypatch.setattr(context_module, "cache", spy)
    return spy


@pytest.fixture
def hashed(api_key):
    return current_hash(api_key.raw_key)


@pytest.fixture
def other_key(customer):
    return api_key_create(customer=customer, name="server")


def key_slot(name: str) -> int:
    return crc_key_slot(name.encode())


def last_used_at(api_key):
    return APIKey.objects.get(pk=api_key.api_key.pk).last_used_at


def test_a_context_carries_the_key_its_customer_and_the_tiers_limits(contexts, hashed, api_key, customer):
    context = contexts.get(hashed)
    assert (context.key_id, context.customer_id, context.revoked) == (api_key.api_key.pk, customer.pk, False)
    assert (context.tier_slug, context.quota, context.burst, context.hard_quota) == ("free", 1000, 5, True)


def test_an_unknown_key_has_no_context(contexts, db):
    assert contexts.get("0" * 64) is None


def test_within_the_ttl_a_context_is_served_without_reading_anything(
    contexts, hashed, clock, shared, django_assert_num_queries
):
    contexts.get(hashed)
    shared.reads.clear()
    clock.now += TTL * 0.9
    with django_assert_num_queries(0):
        assert contexts.get(hashed) is not None
    assert shared.reads == []


def test_once_the_ttl_passes_the_version_is_read_again(contexts, hashed, clock, shared):
    contexts.get(hashed)
    shared.reads.clear()
    clock.now += TTL
    contexts.get(hashed)
    assert shared.reads == [version_key(hashed)]


def test_within_the_ttl_a_revocation_is_not_yet_seen(
    contexts, hashed, api_key, clock, django_capture_on_commit_callbacks
):
    contexts.get(hashed)
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key.api_key)
    clock.now += TTL * 0.9
    assert not contexts.get(hashed).revoked


def test_after_a_version_bump_and_the_ttl_the_context_reloads(
    contexts, hashed, api_key, clock, django_capture_on_commit_callbacks
):
    contexts.get(hashed)
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key.api_key)
    clock.now += TTL
    assert contexts.get(hashed).revoked


def test_a_bump_after_redis_lost_the_version_is_still_seen(
    contexts, hashed, api_key, clock, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invalidate_key_contexts(APIKey.objects.all())
    contexts.get(hashed)
    get_redis_connection("default").flushdb()  # as a Redis restart without persistence
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key.api_key)
    clock.now += TTL
    assert contexts.get(hashed).revoked


def test_without_a_version_bump_a_database_change_is_not_seen(contexts, hashed, api_key, clock):
    contexts.get(hashed)
    APIKey.objects.filter(pk=api_key.api_key.pk).update(scopes=["billing"])
    clock.now += TTL
    assert contexts.get(hashed).scopes == ("api",)


def test_a_context_loaded_by_one_process_reaches_another_without_sql(
    contexts, hashed, clock, django_assert_num_queries
):
    loaded = contexts.get(hashed)
    other_process = KeyContextCache(ttl=TTL, clock=clock)
    with django_assert_num_queries(0):
        assert other_process.get(hashed) == loaded


def test_with_redis_down_contexts_come_from_the_database(hashed, api_key, clock, django_assert_num_queries):
    with override_settings(CACHES=UNREACHABLE_REDIS):
        contexts = KeyContextCache(ttl=TTL, clock=clock)
        with django_assert_num_queries(1):
            assert contexts.get(hashed).key_id == api_key.api_key.pk


def test_the_process_layer_holds_at_most_local_max_entries_rejected_keys(contexts, db, monkeypatch):
    monkeypatch.setattr(context_module, "LOCAL_MAX_ENTRIES", 3)
    for number in range(10):
        contexts.get(f"{number:064d}")
    assert len(contexts._rejected) <= 3


# The writer thread has its own connection: it sees only committed rows.
@pytest.mark.django_db(transaction=True)
def test_a_use_is_written_by_the_writer_thread_without_a_later_use(contexts, api_key):
    contexts.note_use(api_key.api_key.pk, 1_800_000_000)
    assert last_used_writer.wait_until_idle(timeout=30)
    assert last_used_at(api_key) == datetime.fromtimestamp(1_800_000_000, UTC)


def test_noting_a_use_makes_no_query(contexts, api_key, django_assert_num_queries):
    with django_assert_num_queries(0):
        for second in range(100):
            contexts.note_use(api_key.api_key.pk, 1_800_000_000 + second)


def test_flushing_writes_pending_uses_at_once(contexts, api_key):
    contexts.note_use(api_key.api_key.pk, 1_800_000_000)
    contexts.flush_last_used()
    assert last_used_at(api_key) == datetime.fromtimestamp(1_800_000_000, UTC)


@pytest.mark.django_db(transaction=True)
def test_a_limits_change_announced_by_the_catalogue_bumps_the_versions_of_the_tiers_keys(hashed, customer):
    other_tier = Tier.objects.exclude(pk=customer.tier_id).first()
    limits_changed.send(sender=Tier, tiers=[other_tier])
    assert context_module.cache.get(version_key(hashed)) is None
    limits_changed.send(sender=Tier, tiers=[customer.tier])
    assert context_module.cache.get(version_key(hashed)) is not None


def test_every_shared_read_for_a_key_is_in_the_keys_own_slot(contexts, hashed, clock, shared):
    """No key every request reads (a global version): on Redis Cluster, the
    shard holding one global key would delay every customer while it fails
    over; a key's reads go to its own slot only."""
    contexts.get(hashed)
    clock.now += TTL
    contexts.get(hashed)
    assert shared.reads
    assert {key_slot(name) for name in shared.reads} == {key_slot(f"{{k{hashed}}}")}


def test_a_revocation_is_seen_by_every_process_once_the_ttl_passes(
    hashed, api_key, clock, django_capture_on_commit_callbacks
):
    processes = [KeyContextCache(ttl=TTL, clock=clock) for _ in range(3)]
    for process in processes:
        assert not process.get(hashed).revoked
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key.api_key)
    clock.now += TTL
    assert [process.get(hashed).revoked for process in processes] == [True, True, True]


def test_a_change_reaches_only_the_keys_it_names(
    contexts, hashed, customer, other_key, clock, shared, django_capture_on_commit_callbacks
):
    other = current_hash(other_key.raw_key)
    contexts.get(hashed), contexts.get(other)
    with django_capture_on_commit_callbacks(execute=True):
        invalidate_key_contexts(APIKey.objects.filter(pk=other_key.api_key.pk))
    clock.now += TTL
    shared.reads.clear()
    contexts.get(hashed)
    assert shared.reads == [version_key(hashed)]  # unchanged: kept, no reload


def test_a_load_that_raced_a_change_is_not_trusted_by_other_processes(
    hashed, api_key, clock, monkeypatch, django_capture_on_commit_callbacks
):
    """A process reads the key from PostgreSQL, then the key is revoked and its
    version changed, then the process stores what it read: that copy carries
    the version from before, so no other process takes it."""
    load = context_module._load_from_database

    def load_then_revoke(*args):
        loaded = load(*args)
        with django_capture_on_commit_callbacks(execute=True):
            api_key_revoke(api_key=api_key.api_key)
        return loaded

    monkeypatch.setattr(context_module, "_load_from_database", load_then_revoke)
    racing = KeyContextCache(ttl=TTL, clock=clock)
    assert not racing.get(hashed).revoked
    monkeypatch.setattr(context_module, "_load_from_database", load)
    assert KeyContextCache(ttl=TTL, clock=clock).get(hashed).revoked
    clock.now += TTL
    assert racing.get(hashed).revoked


def test_a_customer_change_bumps_each_of_its_active_keys(
    hashed, customer, other_key, django_capture_on_commit_callbacks
):
    other = current_hash(other_key.raw_key)
    with django_capture_on_commit_callbacks(execute=True):
        invalidate_key_contexts(customer_key_contexts([customer.pk]))
    versions = {context_module.cache.get(version_key(name)) for name in (hashed, other)}
    assert len(versions) == 1 and None not in versions


def test_a_stored_context_is_a_third_of_the_pickled_dataclass(contexts, hashed):
    """Redis memory per key (issue 15: 536 B per entry, two entries per key)."""
    contexts.get(hashed)
    name = context_module.cache.make_key(context_module.context_key(hashed))
    assert get_redis_connection("default").memory_usage(name, samples=0) <= 300
