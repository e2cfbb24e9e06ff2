"""metering/lua/check_and_reserve.lua, called directly with redis-py (EVALSHA).

KEYS: burst TAT, quota counter. ARGV: now ms, burst, quota, cost, quota TTL ms,
hard ("1"/"0"). Returns {admitted, reason, used, burst_remaining, wait_ms}.
"""

from datetime import UTC, datetime

import pytest
from django_redis import get_redis_connection
from redis.crc import key_slot
from redis.exceptions import ResponseError

from metering.limiter import CHECK_AND_RESERVE, Limits, RedisLimiter, redis_key
from metering.periods import period_bounds

NOW_MS = 1_800_000_000_000  # 2027-01-15 08:00:00 UTC
START, END = period_bounds("month", datetime.fromtimestamp(NOW_MS / 1000, UTC))
END_MS = int(END.timestamp() * 1000)
BURST_KEY = redis_key("burst", 42)
QUOTA_KEY = redis_key("quota", 42, int(START.timestamp()))


@pytest.fixture
def client():
    return get_redis_connection("default")


@pytest.fixture
def script(client):
    return client.register_script(CHECK_AND_RESERVE)


def call(script, *, now=NOW_MS, burst=5, quota=1_000, cost=1, hard=1, seed=0):
    args = [now, burst, quota, cost, END_MS - now + 60_000, hard, seed]
    return script(keys=[BURST_KEY, QUOTA_KEY], args=args)


def customer_memory(client):
    return sum(client.memory_usage(key) for key in (BURST_KEY, QUOTA_KEY))


def test_it_refuses_a_call_with_one_key(script):
    with pytest.raises(ResponseError, match="expected 2 keys"):
        script(keys=[BURST_KEY], args=[NOW_MS, 5, 1_000, 1, 60_000, 1, 0])


def test_it_refuses_a_call_with_six_arguments(script):
    with pytest.raises(ResponseError, match="expected 7 arguments"):
        script(keys=[BURST_KEY, QUOTA_KEY], args=[NOW_MS, 5, 1_000, 1, 60_000, 1])


def test_an_admitted_call_returns_the_reservation(script):
    assert call(script, burst=5, cost=3) == [1, 0, 3, 4, 200]


def test_a_burst_denial_returns_reason_one_and_the_wait(script):
    for _ in range(5):
        call(script, burst=5)
    assert call(script, burst=5) == [0, 1, 5, 0, 200]


def test_a_quota_denial_returns_reason_two(script):
    call(script, quota=1)
    assert call(script, quota=1) == [0, 2, 1, 4, 200]


def test_it_writes_exactly_the_two_keys_it_is_given(client, script):
    call(script)
    assert sorted(client.keys("*")) == sorted([BURST_KEY.encode(), QUOTA_KEY.encode()])


def test_every_key_it_writes_has_a_ttl(client, script):
    call(script)
    assert all(client.pttl(key) > 0 for key in client.keys("*"))


def test_the_quota_counter_outlives_the_period_end(client, script):
    call(script)
    assert client.pttl(QUOTA_KEY) > END_MS - NOW_MS


def test_the_burst_state_expires_once_the_burst_is_whole_again(client, script):
    call(script, burst=5)
    assert 0 < client.pttl(BURST_KEY) <= 201


def test_a_later_call_keeps_a_ttl_on_the_quota_counter(client, script):
    call(script)
    call(script, now=NOW_MS + 1000)
    assert client.pttl(QUOTA_KEY) > END_MS - NOW_MS - 1000


def test_a_quota_denial_writes_nothing(client, script):
    call(script, quota=1)
    before = client.get(BURST_KEY), client.get(QUOTA_KEY)
    call(script, quota=1, now=NOW_MS + 500)
    assert (client.get(BURST_KEY), client.get(QUOTA_KEY)) == before


def test_a_burst_denial_writes_nothing(client, script):
    call(script, burst=1)
    before = client.get(BURST_KEY), client.get(QUOTA_KEY)
    call(script, burst=1, now=NOW_MS + 500)
    assert (client.get(BURST_KEY), client.get(QUOTA_KEY)) == before


def test_all_keys_the_limiter_writes_carry_the_customers_hash_tag(client):
    limits = Limits(customer_id=42, burst=5, quota=1_000, period_start=START, period_end=END)
    RedisLimiter(client).check(limits, now_ms=NOW_MS)
    keys = client.keys("*")
    assert len(keys) == 2
    assert all(b":{c42}" in key for key in keys)


def test_a_customers_keys_map_to_one_cluster_slot():
    assert key_slot(BURST_KEY.encode()) == key_slot(QUOTA_KEY.encode())


def test_the_slot_follows_the_customer_not_the_key_kind():
    assert key_slot(redis_key("burst", 1).encode()) == key_slot(b"{c1}")


def test_memory_per_customer_does_not_grow_with_requests(client, script):
    # burst 1 paced at one request a second: the burst key lives a full second
    # of real time, so both keys still exist when they are measured.
    call(script, burst=1, quota=500_000)
    after_one = customer_memory(client)
    for second in range(1, 5_000):
        call(script, now=NOW_MS + 1000 * second, burst=1, quota=500_000)
    assert int(client.get(QUOTA_KEY)) == 5_000
    assert customer_memory(client) == after_one


def test_memory_per_customer_is_under_a_kilobyte(client, script):
    call(script, burst=1, quota=500_000, cost=499_999)
    assert customer_memory(client) < 1024


def test_the_tat_is_stored_with_three_decimals(client, script):
    call(script, burst=3)
    assert client.get(BURST_KEY) == b"1800000000333.333"


@pytest.mark.parametrize("burst", [3, 6, 7])
def test_a_burst_that_does_not_divide_a_second_fits_at_millisecond_timestamps(script, burst):
    decisions = [call(script, burst=burst)[0] for _ in range(burst + 1)]
    assert decisions == [1] * burst + [0]


def test_a_missing_counter_asks_for_a_seed_and_writes_nothing(script, client):
    assert call(script, seed=-1) == [0, 3, 0, 0, 0]
    assert client.exists(BURST_KEY, QUOTA_KEY) == 0


def test_a_seed_starts_a_missing_counter(script, client):
    assert call(script, seed=40)[:3] == [1, 0, 41]
    assert int(client.get(QUOTA_KEY)) == 41


def test_a_seed_is_ignored_when_the_counter_exists(script, client):
    call(script, seed=40)
    assert call(script, now=NOW_MS + 1000, seed=-1)[:3] == [1, 0, 42]


def test_a_seed_at_the_quota_denies(script):
    assert call(script, quota=10, seed=10)[:2] == [0, 2]
