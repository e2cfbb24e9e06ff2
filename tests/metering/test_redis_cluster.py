"""Metering on a real local Redis Cluster (tests/redis_cluster.py): the
limiter's three calls and the flush for customers on every master, the
deadline and the breaker with a cluster client.

The other metering suites (the limiter contract, the Lua scripts, the flush)
run on the cluster too; these are the cases only a cluster has: customers
whose keys live on different nodes.
"""

import itertools
import threading
import time
from datetime import UTC, datetime

import pytest
import redis
from django.db.models import Sum
from django_redis import get_redis_connection

from apikeys.services import api_key_create
from core.breaker import breakers_reset, redis_breaker
from metering.flush import flush_usage
from metering.keys import hour_of, idempotency_record, pending_key, usage_field
from metering.limiter import (
    ClaimedKey,
    ClaimOutcome,
    LimiterUnavailable,
    Limits,
    RedisLimiter,
    SettleRequest,
    get_limiter,
)
from metering.limiter.redis_backend import django_redis_client
from metering.models import UsageRecord
from plans.periods import period_bounds
from plans.services import customer_get_or_create
from tests.faults.server import free_port
from tests.redis_cluster import cluster_caches

MASTERS = 3


def now_ms() -> int:
    return int(time.time() * 1000)


def make_limits(customer_id: int) -> Limits:
    start, end = period_bounds("month", datetime.now(UTC))
    return Limits(customer_id=customer_id, burst=100, quota=1_000, period_start=start, period_end=end)


def master_of(client, customer_id: int) -> str:
    return client.get_node_from_key(pending_key(customer_id)).name


def customer_ids_on_each_master(client) -> list[int]:
    """The smallest customer id whose keys live on each master."""
    first_on: dict[str, int] = {}
    for customer_id in itertools.count(1):
        first_on.setdefault(master_of(client, customer_id), customer_id)
        if len(first_on) == MASTERS:
            return sorted(first_on.values())
    raise AssertionError("unreachable")


@pytest.fixture
def cluster_client(on_redis_cluster):
    return get_redis_connection("default")


def test_the_default_cache_is_a_cluster_client_that_found_every_master(cluster_client):
    assert len(cluster_client.get_primaries()) == MASTERS


def test_the_cache_works_for_keys_on_every_master(cluster_client):
    from django.core.cache import cache

    for index in range(30):  # 30 keys: all three masters, by their slots
        cache.set(f"key-{index}", index)
    assert [cache.get(f"key-{index}") for index in range(30)] == list(range(30))


@pytest.mark.parametrize("master", range(MASTERS))
def test_a_check_settle_and_claim_work_for_a_customer_on_each_master(cluster_client, master):
    customer_id = customer_ids_on_each_master(cluster_client)[master]
    limiter, limits, field = RedisLimiter(cluster_client), make_limits(customer_id), usage_field(0, 1, "echo")
    record = idempotency_record(customer_id, "order-1")
    assert limiter.claim(record, fingerprint="f", token="t", now_ms=now_ms()).outcome == ClaimOutcome.CLAIMED
    decision = limiter.check(limits, now_ms=now_ms(), bill_field=field)
    claimed = ClaimedKey(record, "t", stored=True, status=200, content_type="application/json", body=b"{}")
    settled = limiter.settle(SettleRequest(decision, True, True, 1, field, claimed))
    assert (decision.admitted, settled.billed, settled.used) == (True, True, 1)
    assert cluster_client.hget(pending_key(customer_id), field) == b"1"
    replay = limiter.claim(record, fingerprint="f", token="t2", now_ms=now_ms())
    assert (replay.outcome, replay.status, replay.body) == (ClaimOutcome.STORED, 200, b"{}")


@pytest.mark.parametrize("master", range(MASTERS))
def test_a_failed_request_without_an_idempotency_key_is_unbilled_on_each_master(cluster_client, master):
    customer_id = customer_ids_on_each_master(cluster_client)[master]
    limiter, limits, field = RedisLimiter(cluster_client), make_limits(customer_id), usage_field(0, 1, "echo")
    decision = limiter.check(limits, now_ms=now_ms(), bill_field=field)
    settled = limiter.settle(SettleRequest(decision, True, False, 1, field))
    assert (settled.billed, settled.used) == (False, 0)
    assert cluster_client.hget(pending_key(customer_id), field) is None


def test_the_limiter_behind_the_default_cache_checks_customers_on_every_master(cluster_client):
    for customer_id in customer_ids_on_each_master(cluster_client):
        decision = get_limiter().check(make_limits(customer_id), now_ms=now_ms())
        assert (decision.admitted, decision.quota_used) == (True, 1)
    assert django_redis_client() is cluster_client


def test_the_flush_moves_usage_of_customers_on_every_master(cluster_client, default_tiers):
    customers = []
    while {master_of(cluster_client, customer.pk) for customer in customers} != {
        node.name for node in cluster_client.get_primaries()
    }:
        customers.append(customer_get_or_create(email=f"c{len(customers)}@example.com")[0])
    limiter, now = RedisLimiter(cluster_client), now_ms()
    for units, customer in enumerate(customers, start=1):
        field = usage_field(hour_of(now), api_key_create(customer=customer, name="k").api_key.pk, "echo")
        for _ in range(units):
            limiter.check(make_limits(customer.pk), now_ms=now, bill_field=field)
    result = flush_usage()
    assert (result.customers, result.units) == (len(customers), sum(range(1, len(customers) + 1)))
    for units, customer in enumerate(customers, start=1):
        assert UsageRecord.objects.filter(customer=customer).aggregate(total=Sum("count"))["total"] == units
    assert list(cluster_client.scan_iter(match="metering:v1:usage:*")) == []


def stall_master_of(cluster_client, customer_id: int, seconds: int) -> threading.Thread:
    """Stall the master serving `customer_id` for `seconds` (DEBUG SLEEP: it
    reads nothing meanwhile, then runs what was sent, as a stalled server does)."""
    node = cluster_client.get_node_from_key(pending_key(customer_id))
    admin = redis.Redis(host=node.host, port=node.port)
    sleeper = threading.Thread(target=admin.execute_command, args=("DEBUG", "SLEEP", seconds))
    sleeper.start()
    time.sleep(0.1)  # the sleep has begun
    return sleeper


def test_a_check_that_timed_out_on_a_cluster_is_not_billed_when_its_node_runs_it_late(
    cluster_client, settings
):
    settings.REDIS_DOWN_BACKOFF_SECONDS = 0
    customer_id = customer_ids_on_each_master(cluster_client)[0]
    limiter, limits, field = RedisLimiter(cluster_client), make_limits(customer_id), usage_field(0, 1, "echo")
    limiter.check(limits, now_ms=now_ms(), bill_field=field)
    sleeper = stall_master_of(cluster_client, customer_id, 1)
    with pytest.raises(LimiterUnavailable):  # the caller answers 503
        limiter.check(limits, now_ms=now_ms(), bill_field=field)
    sleeper.join()  # the node woke and ran the queued check, past its deadline
    assert cluster_client.hget(pending_key(customer_id), field) == b"1"
    assert limiter.check(limits, now_ms=now_ms(), bill_field=field).quota_used == 2


def test_after_a_failed_call_on_a_cluster_the_next_ones_fail_fast(cluster_client, settings):
    settings.REDIS_DOWN_BACKOFF_SECONDS = 60
    customer_id = customer_ids_on_each_master(cluster_client)[0]
    limiter, limits = RedisLimiter(cluster_client), make_limits(customer_id)
    limiter.check(limits, now_ms=now_ms())
    sleeper = stall_master_of(cluster_client, customer_id, 1)
    with pytest.raises(LimiterUnavailable, match="[Tt]ime"):
        limiter.check(limits, now_ms=now_ms())
    sleeper.join()  # answering again, but the backoff has not ended
    with pytest.raises(LimiterUnavailable, match="failing fast"):
        limiter.check(limits, now_ms=now_ms())
    assert redis_breaker(cluster_client, pending_key(customer_id)).is_open


def test_a_stalled_master_fails_fast_only_the_customers_it_serves(cluster_client, settings):
    """One breaker per node: while a master is down, the customers of the
    other masters are served without a wait or a failure."""
    settings.REDIS_DOWN_BACKOFF_SECONDS = 60
    stalled, *others = customer_ids_on_each_master(cluster_client)
    limiter = RedisLimiter(cluster_client)
    sleeper = stall_master_of(cluster_client, stalled, 1)
    with pytest.raises(LimiterUnavailable, match="[Tt]ime"):
        limiter.check(make_limits(stalled), now_ms=now_ms())
    for customer_id in others:
        assert limiter.check(make_limits(customer_id), now_ms=now_ms()).admitted
    with pytest.raises(LimiterUnavailable, match="failing fast"):
        limiter.check(make_limits(stalled), now_ms=now_ms())
    sleeper.join()


def test_a_lost_reply_is_cancelled_on_its_own_node_without_failing_other_customers(cluster_client, settings):
    settings.REDIS_DOWN_BACKOFF_SECONDS = 0.5
    stalled, other, _ = customer_ids_on_each_master(cluster_client)
    limiter, field = RedisLimiter(cluster_client), usage_field(0, 1, "echo")
    sleeper = stall_master_of(cluster_client, stalled, 1)
    with pytest.raises(LimiterUnavailable):
        limiter.check(make_limits(stalled), now_ms=now_ms(), bill_field=field)
    # The cancel of the lost check waits for its node; this customer's check does not.
    assert limiter.check(make_limits(other), now_ms=now_ms(), bill_field=field).admitted
    sleeper.join()  # the stalled node ran the check late: one unit counted
    time.sleep(0.5)  # its breaker lets a call try again
    assert limiter.check(make_limits(stalled), now_ms=now_ms(), bill_field=field).quota_used == 1
    assert cluster_client.hget(pending_key(stalled), field) == b"1"


def node_index(cluster, client, customer_id: int) -> int:
    return cluster.ports.index(client.get_node_from_key(pending_key(customer_id)).port)


def test_a_check_on_a_cluster_that_lost_a_master_is_limiter_unavailable(private_redis_cluster, settings):
    """For the lost master's customers, and, once the cluster notices
    (cluster_state:fail), for every customer: the other masters refuse every
    command with CLUSTERDOWN. The API answers 503, never 500."""
    settings.REDIS_DOWN_BACKOFF_SECONDS = 0
    client = get_redis_connection("default")
    lost_customer, other_customer, _ = customer_ids_on_each_master(client)
    lost, survivor = (node_index(private_redis_cluster, client, c) for c in (lost_customer, other_customer))
    limiter = RedisLimiter(client)
    private_redis_cluster.kill(lost)
    private_redis_cluster.wait_for_state("fail", on=survivor)
    for customer_id in (lost_customer, other_customer):
        with pytest.raises(LimiterUnavailable):
            limiter.check(make_limits(customer_id), now_ms=now_ms(), bill_field=usage_field(0, 1, "echo"))


def test_with_the_node_in_redis_url_down_at_start_the_api_answers_503_not_500(settings, key_client, customer):
    """A process started after a failover, REDIS_URL still naming the killed
    master: the cluster client cannot even be made. 503, never 500."""
    port = free_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.REDIS_CLUSTER = True
    settings.CACHES = cluster_caches(settings.REDIS_URL)
    breakers_reset()
    try:
        response = key_client.get("/api/v1/echo")
        health = key_client.get("/healthz")
    finally:
        breakers_reset()
    assert response.status_code == 503, response.content
    assert health.status_code == 503


def test_with_replica_acks_a_killed_master_loses_no_billed_request(
    replicated_redis_cluster, settings, key_client, customer
):
    """REDIS_REPLICA_ACKS=1: each 200 was served once a replica held its unit,
    so the replica promoted after the master's SIGKILL has every one; the
    limiter follows the slot to it. Meanwhile 503s, each within a second."""
    settings.REDIS_REPLICA_ACKS = 1
    settings.REDIS_DOWN_BACKOFF_SECONDS = 0.2
    echo = "/api/v1/echo?msg=failover"
    statuses = [key_client.get(echo).status_code for _ in range(5)]
    assert statuses == [200] * 5
    client = get_redis_connection("default")
    replicated_redis_cluster.kill(node_index(replicated_redis_cluster, client, customer.pk))
    after, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline and (503 not in after or after[-3:] != [200] * 3):
        started = time.monotonic()
        after.append(key_client.get(echo).status_code)
        assert time.monotonic() - started < 1.0, "a request waited on Redis"
        time.sleep(0.02)
    assert 503 in after and after[-3:] == [200] * 3, after[-10:]
    assert set(after) == {200, 503}
    statuses += after
    flush_usage()
    billed = UsageRecord.objects.filter(customer=customer).aggregate(total=Sum("count"))["total"]
    assert billed == statuses.count(200)
