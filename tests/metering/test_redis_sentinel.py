"""The API on Redis Sentinel (REDIS_SENTINELS): served, limited and billed
through the master the Sentinel names, and across a failover: 503s while
there is no master, never a 500, and every 200 billed once."""

import signal
import time

import pytest
import redis
from django.db.models import Sum
from redis.exceptions import ConnectionError as RedisConnectionError

from metering.flush import flush_usage
from metering.limiter import wire
from metering.models import UsageRecord
from saas.health import check_redis

ECHO = "/api/v1/echo?msg=sentinel"
FAILOVER_SECONDS = 30


def billed(customer) -> int:
    flush_usage()
    return UsageRecord.objects.filter(customer=customer).aggregate(total=Sum("count"))["total"] or 0


def serve_until_200(key_client, seconds: float) -> list[int]:
    """Requests until one is served, each answered within a second."""
    statuses, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        statuses.append(key_client.get(ECHO).status_code)
        assert time.monotonic() - started < 1.0, "a request waited on Redis"
        if statuses[-1] == 200:
            return statuses
        time.sleep(0.05)
    pytest.fail(f"no 200 within {seconds} s: {statuses[-10:]}")


def test_the_api_is_served_limited_and_billed_through_the_sentinels_master(
    on_redis_sentinel, key_client, customer
):
    responses = [key_client.get(ECHO) for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 200]
    assert responses[-1]["RateLimit-Remaining"]
    assert check_redis() == ("ok", None)
    assert on_redis_sentinel.master().dbsize() > 0  # the limiter's keys are on the master
    assert billed(customer) == 3


def test_a_planned_failover_is_followed_without_a_500_and_bills_every_200(
    on_redis_sentinel, key_client, customer
):
    assert key_client.get(ECHO).status_code == 200
    on_redis_sentinel.wait_replicated()
    on_redis_sentinel.fail_over()
    statuses = [1] + serve_until_200(key_client, FAILOVER_SECONDS)  # the old master answers READONLY now
    statuses += [key_client.get(ECHO).status_code for _ in range(3)]
    assert set(statuses) <= {1, 200, 503}
    served = statuses.count(200) + 1
    assert billed(customer) == served


def test_a_killed_master_gives_fast_503s_until_the_replica_is_promoted(
    on_redis_sentinel, key_client, customer, settings
):
    settings.REDIS_DOWN_BACKOFF_SECONDS = 0.2
    assert key_client.get(ECHO).status_code == 200
    on_redis_sentinel.wait_replicated()
    on_redis_sentinel.kill_master()
    statuses = serve_until_200(key_client, FAILOVER_SECONDS)
    assert 503 in statuses and set(statuses) == {200, 503}
    response = key_client.get(ECHO)
    assert response.status_code == 200
    assert billed(customer) == 1 + statuses.count(200) + 1


def test_a_demoted_master_on_the_limiters_own_connection_is_redis_out_of_reach(on_redis_sentinel):
    """The check's connection (metering.limiter.wire) reads replies itself: a
    READONLY from a master demoted under it (Sentinel usually closes those
    connections, not always) drops the connection as redis-py's Sentinel
    connection does, so the next one asks the Sentinels. Never a 500."""
    replica = redis.Redis(port=on_redis_sentinel.replica_port, socket_timeout=1)
    command = ("SET", "metering:probe", "1")
    with pytest.raises(RedisConnectionError, match="now a replica"):
        wire.send_line(replica, wire.pack(*command), command)


def test_with_replica_acks_a_request_is_served_once_the_replica_holds_its_unit(
    on_redis_sentinel, key_client, customer, settings
):
    settings.REDIS_REPLICA_ACKS = 1
    assert key_client.get(ECHO).status_code == 200
    replica = redis.Redis(port=on_redis_sentinel.replica_port)
    assert replica.keys("metering:v1:usage:*")  # no wait: the unit was there before the 200
    assert billed(customer) == 1


def test_with_replica_acks_and_no_replica_answering_a_request_is_a_503_and_never_billed(
    on_redis_sentinel, key_client, customer, settings
):
    settings.REDIS_REPLICA_ACKS = 1
    settings.REDIS_DOWN_BACKOFF_SECONDS = 0.1
    assert key_client.get(ECHO).status_code == 200
    replica = on_redis_sentinel.processes[on_redis_sentinel.replica_port]
    replica.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = key_client.get(ECHO)
        assert time.monotonic() - started < 1.0
    finally:
        replica.send_signal(signal.SIGCONT)
    assert response.status_code == 503
    assert response.json()["error"] == "rate_limiter_unavailable"
    on_redis_sentinel.wait_replicated()
    time.sleep(0.2)  # the backoff: the next request probes Redis again
    served = key_client.get(ECHO)  # its check first cancels the unanswered one
    assert served.status_code == 200
    master = on_redis_sentinel.master()
    (quota_key,) = master.keys(f"metering:v1:quota:{{c{customer.pk}}}:*")
    assert master.get(quota_key) == b"2"  # the unanswered check gave its unit back
    assert billed(customer) == 2
