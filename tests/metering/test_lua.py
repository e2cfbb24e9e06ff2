"""metering/lua/check_and_reserve.lua, called directly with redis-py (EVALSHA).

KEYS: burst TAT, quota counter, the customer's pending usage hash. ARGV: burst,
quota, ceiling (quota, or -1 for overage), when the counter may expire (ms),
pending TTL ms, then now ms, cost, seed, usage field to bill ("" to only reserve).
Returns the status reply "reason used burst_remaining wait_ms"; `call` below
turns it into [admitted, reason, used, burst_remaining, wait_ms].
"""

from datetime import UTC, datetime

import pytest
from django_redis import get_redis_connection
from redis.crc import key_slot
from redis.exceptions import ResponseError

from metering.keys import hour_of, redis_key, usage_field
from metering.limiter import Limits, RedisLimiter
from metering.limiter.contract import PENDING_TTL_MS
from metering.limiter.redis_backend import CANCEL_CHECK, CHECK_AND_RESERVE
from plans.periods import period_bounds

NOW_MS = 1_800_000_000_000  # 2027-01-15 08:00:00 UTC
START, END = period_bounds("month", datetime.fromtimestamp(NOW_MS / 1000, UTC))
END_MS = int(END.timestamp() * 1000)
BURST_KEY = redis_key("burst", 42)
QUOTA_KEY = redis_key("quota", 42, int(START.timestamp()))
PENDING_KEY = redis_key("usage", 42)
FIELD = usage_field(hour_of(NOW_MS), 7, "api:echo")
FIXED_ARGS = [5, 1_000, 1_000, END_MS, PENDING_TTL_MS]  # burst, quota, ceiling, counter expiry, pending TTL


@pytest.fixture
def client(redis_layout):
    """The default cache's client, on a single Redis and on a Redis Cluster."""
    return get_redis_connection("default")


@pytest.fixture
def script(client):
    return client.register_script(CHECK_AND_RESERVE)


def call(
    script, *, now=NOW_MS, burst=5, quota=1_000, cost=1, hard=1, seed=0, bill="", deadline=0, witness=""
):
    ceiling = quota if hard else -1
    args = [burst, quota, ceiling, END_MS + 60_000, PENDING_TTL_MS, now, cost, seed, bill, deadline, witness]
    reason, *figures = map(int, script(keys=[BURST_KEY, QUOTA_KEY, PENDING_KEY], args=args).split())
    return [int(reason == 0), reason, *figures]


def pending(client) -> dict[str, int]:
    """The usage fields (not the checks' witnesses)."""
    raw = client.hgetall(PENDING_KEY).items()
    return {name.decode(): int(value) for name, value in raw if name.startswith(b"u|")}


def all_keys(client) -> list[bytes]:
    """Every key, sorted: SCAN reaches every primary of a cluster, KEYS only one."""
    return sorted(client.scan_iter(match="*"))


def customer_memory(client):
    return sum(client.memory_usage(key) for key in (BURST_KEY, QUOTA_KEY))


def test_it_refuses_a_call_with_two_keys(script):
    with pytest.raises(ResponseError, match="expected 3 keys"):
        script(keys=[BURST_KEY, QUOTA_KEY], args=[*FIXED_ARGS, NOW_MS, 1, 0, "", 0, ""])


def test_it_refuses_a_call_with_ten_arguments(script):
    with pytest.raises(ResponseError, match="expected 11 arguments"):
        script(
            keys=[BURST_KEY, QUOTA_KEY, PENDING_KEY],
            args=[5, 1_000, 1_000, END_MS, PENDING_TTL_MS, NOW_MS, 1, 0, FIELD, 0],
        )


def redis_now_ms(client) -> int:
    seconds, microseconds = client.time()
    return seconds * 1000 + microseconds // 1000


def test_a_call_past_its_deadline_is_refused_with_reason_four_and_writes_nothing(client, script):
    assert call(script, bill=FIELD, deadline=redis_now_ms(client) - 1) == [0, 4, 0, 0, 0]
    assert all_keys(client) == []


def test_a_call_within_its_deadline_runs(client, script):
    assert call(script, bill=FIELD, deadline=redis_now_ms(client) + 60_000)[:3] == [1, 0, 1]


def test_a_refused_call_writes_nothing(client, script):
    with pytest.raises(ResponseError):
        script(
            keys=[BURST_KEY, QUOTA_KEY, PENDING_KEY],
            args=[5, 1_000, 1_000, END_MS, PENDING_TTL_MS, NOW_MS, 1, 0, FIELD, 0, "", "extra"],
        )
    assert all_keys(client) == []


def test_an_admitted_call_returns_the_reservation(script):
    assert call(script, burst=5, cost=3) == [1, 0, 3, 4, 200]


def test_a_burst_denial_returns_reason_one_and_the_wait(script):
    for _ in range(5):
        call(script, burst=5)
    assert call(script, burst=5) == [0, 1, 5, 0, 200]


def test_a_quota_denial_returns_reason_two(script):
    call(script, quota=1)
    assert call(script, quota=1) == [0, 2, 1, 4, 200]


def test_without_a_usage_field_it_writes_only_the_burst_and_quota_keys(client, script):
    call(script)
    assert all_keys(client) == sorted([BURST_KEY.encode(), QUOTA_KEY.encode()])


def test_with_a_usage_field_it_writes_exactly_the_three_keys_it_is_given(client, script):
    call(script, bill=FIELD)
    assert all_keys(client) == sorted([BURST_KEY.encode(), QUOTA_KEY.encode(), PENDING_KEY.encode()])


def test_every_key_it_writes_has_a_ttl(client, script):
    call(script, bill=FIELD)
    assert len(all_keys(client)) == 3
    assert all(client.pttl(key) > 0 for key in all_keys(client))


def test_a_usage_field_bills_the_cost_to_the_pending_hash(client, script):
    assert call(script, cost=3, bill=FIELD)[:3] == [1, 0, 3]
    assert pending(client) == {FIELD: 3}


def test_billed_requests_add_up_in_their_field(client, script):
    for _ in range(3):
        call(script, bill=FIELD)
    call(script, bill=usage_field(hour_of(NOW_MS), 7, "api:primes"))
    assert pending(client) == {FIELD: 3, usage_field(hour_of(NOW_MS), 7, "api:primes"): 1}


def test_a_bill_sets_the_pending_hashs_ttl(client, script):
    call(script, bill=FIELD)
    assert PENDING_TTL_MS - 5_000 < client.pttl(PENDING_KEY) <= PENDING_TTL_MS


def test_a_new_usage_field_renews_the_pending_hashs_ttl(client, script):
    call(script, bill=FIELD)
    client.pexpire(PENDING_KEY, 1_000)
    call(script, now=NOW_MS + 3_600_000, bill=usage_field(hour_of(NOW_MS + 3_600_000), 7, "api:echo"))
    assert client.pttl(PENDING_KEY) > 1_000


def test_a_bill_to_an_existing_field_leaves_the_ttl_alone(client, script):
    # One command fewer per request; the hash is renewed at least every hour.
    call(script, bill=FIELD)
    client.pexpire(PENDING_KEY, 50_000)
    call(script, now=NOW_MS + 1000, bill=FIELD)
    assert 0 < client.pttl(PENDING_KEY) <= 50_000


def test_an_empty_usage_field_reserves_but_bills_nothing(client, script):
    assert call(script, cost=3, bill="")[:3] == [1, 0, 3]
    assert (int(client.get(QUOTA_KEY)), client.exists(PENDING_KEY)) == (3, 0)


def test_an_empty_usage_field_leaves_an_existing_pending_hash_alone(client, script):
    call(script, bill=FIELD)
    call(script, now=NOW_MS + 1000, bill="")
    assert pending(client) == {FIELD: 1}


def test_a_quota_denial_bills_nothing(client, script):
    call(script, quota=1, bill=FIELD)
    assert call(script, quota=1, now=NOW_MS + 1000, bill=FIELD)[:2] == [0, 2]
    assert pending(client) == {FIELD: 1}


def test_a_burst_denial_bills_nothing(client, script):
    call(script, burst=1, bill=FIELD)
    assert call(script, burst=1, now=NOW_MS + 500, bill=FIELD)[:2] == [0, 1]
    assert pending(client) == {FIELD: 1}


def test_a_request_asking_for_a_seed_bills_nothing(client, script):
    assert call(script, seed=-1, bill=FIELD)[:2] == [0, 3]
    assert client.exists(PENDING_KEY) == 0


def test_a_soft_quota_bills_the_overage(client, script):
    call(script, quota=1, hard=0, bill=FIELD)
    assert call(script, quota=1, hard=0, now=NOW_MS + 1000, bill=FIELD)[:3] == [1, 0, 2]
    assert pending(client) == {FIELD: 2}


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
    RedisLimiter(client).check(limits, now_ms=NOW_MS, bill_field=FIELD)
    keys = all_keys(client)
    assert len(keys) == 3
    assert all(b":{c42}" in key for key in keys)


def test_the_limiter_bills_to_the_customers_pending_hash(client):
    limits = Limits(customer_id=42, burst=5, quota=1_000, period_start=START, period_end=END)
    RedisLimiter(client).check(limits, cost=2, now_ms=NOW_MS, bill_field=FIELD)
    assert pending(client) == {FIELD: 2}


class ClusterLikeClient:
    """A client without a plain connection pool, as redis-py's RedisCluster:
    the limiter must send through its execute_command (here, a real Redis)."""

    def __init__(self, client):
        self.client = client
        self.commands = []

    def execute_command(self, *command):
        self.commands.append(command[0])
        return self.client.execute_command(*command)

    def script_load(self, source):
        return self.client.script_load(source)


def test_a_client_without_a_plain_pool_gets_the_same_decisions(client):
    cluster_like = ClusterLikeClient(client)
    limiter = RedisLimiter(cluster_like)
    limits = Limits(customer_id=42, burst=5, quota=2, period_start=START, period_end=END)
    client.script_flush()  # the script is loaded through the client when missing
    decisions = [limiter.check(limits, now_ms=NOW_MS + 1000 * n, bill_field=FIELD) for n in range(3)]
    assert [(d.admitted, d.quota_used) for d in decisions] == [(True, 1), (True, 2), (False, 2)]
    assert cluster_like.commands == ["EVALSHA"] * 4  # one refused with NOSCRIPT, then reloaded
    assert pending(client) == {FIELD: 2}


def test_a_customers_keys_map_to_one_cluster_slot():
    assert len({key_slot(key.encode()) for key in (BURST_KEY, QUOTA_KEY, PENDING_KEY)}) == 1


def test_the_slot_follows_the_customer_not_the_key_kind():
    assert key_slot(redis_key("burst", 1).encode()) == key_slot(b"{c1}")


def test_memory_per_customer_does_not_grow_with_requests(client, script):
    # burst 1 paced at one request a second: the burst key lives a full second
    # of real time, so both keys still exist when they are measured. The
    # pending hash is emptied by the flush every minute; within one hour it
    # holds one field per key and endpoint, however many requests they make.
    call(script, burst=1, quota=500_000, bill=FIELD)
    after_one = customer_memory(client)
    for second in range(1, 3_600):
        now = NOW_MS + 1000 * second
        call(script, now=now, burst=1, quota=500_000, bill=usage_field(hour_of(now), 7, "api:echo"))
    assert int(client.get(QUOTA_KEY)) == 3_600
    assert customer_memory(client) == after_one
    assert pending(client) == {FIELD: 3_600}


def test_memory_per_customer_is_under_a_kilobyte(client, script):
    call(script, burst=1, quota=500_000, cost=499_999, bill=FIELD)
    assert customer_memory(client) + client.memory_usage(PENDING_KEY) < 1024


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


# The witness a billed check leaves, and cancel_check.lua


def test_a_billed_check_leaves_its_witness_in_its_threads_slot(client, script):
    call(script, bill=FIELD, witness="t1|000a")
    assert client.hget(PENDING_KEY, "w|t1") == b"000a"


def test_a_check_that_bills_nothing_leaves_no_witness(client, script):
    call(script, witness="t1|000a")
    assert not client.exists(PENDING_KEY)


def test_a_threads_next_check_replaces_its_witness(client, script):
    for n in range(5):
        call(script, now=NOW_MS + n * 1000, bill=FIELD, witness=f"t1|{n:04x}")
    call(script, now=NOW_MS + 9000, bill=FIELD, witness="t2|0009")
    witnesses = {f: v for f, v in client.hgetall(PENDING_KEY).items() if f.startswith(b"w|")}
    assert witnesses == {b"w|t1": b"0004", b"w|t2": b"0009"}


def cancel(client, witness, cost=1):
    return client.register_script(CANCEL_CHECK)(keys=[QUOTA_KEY, PENDING_KEY], args=[witness, FIELD, cost])


def test_a_cancel_finds_its_check_and_undoes_it(client, script):
    call(script, bill=FIELD, witness="t1|000a")
    call(script, now=NOW_MS + 1000, bill=FIELD, witness="t2|000b")
    assert cancel(client, "t1|000a") == 1
    assert (pending(client), client.get(QUOTA_KEY)) == ({FIELD: 1}, b"1")


def test_a_cancel_sent_twice_undoes_once(client, script):
    call(script, bill=FIELD, witness="t1|000a")
    call(script, now=NOW_MS + 1000, bill=FIELD, witness="t2|000b")
    assert [cancel(client, "t1|000a"), cancel(client, "t1|000a")] == [1, 0]
    assert pending(client) == {FIELD: 1}


def test_a_cancel_of_a_check_that_never_ran_changes_nothing(client, script):
    call(script, bill=FIELD, witness="t1|000a")
    assert cancel(client, "t1|000c") == 0
    assert (pending(client), client.get(QUOTA_KEY)) == ({FIELD: 1}, b"1")
