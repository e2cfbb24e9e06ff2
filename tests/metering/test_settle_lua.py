"""metering/lua/settle.lua, called directly with redis-py (EVALSHA).

KEYS: quota counter, pending usage hash, idempotency marker ("" if none).
ARGV: billable ("1"/"0"), cost, usage field, pending TTL ms, marker TTL s,
then (cost field, increment) pairs. Returns {billed, used}.
"""

import pytest
from django_redis import get_redis_connection
from redis.crc import key_slot
from redis.exceptions import ResponseError

from metering.limiter import IDEMPOTENCY_TTL_SECONDS, PENDING_TTL_MS, SETTLE, redis_key
from metering.usage import idempotency_marker, snapshot_key

QUOTA_KEY = redis_key("quota", 42, 1_800_000_000)
PENDING_KEY = redis_key("usage", 42)
MARKER = idempotency_marker(42, "order-1")
FIELD = "u|1800000000|7|api:echo"
COST_FIELD = "c|1800000000|api:echo|requests"


@pytest.fixture
def client():
    return get_redis_connection("default")


@pytest.fixture
def script(client):
    return client.register_script(SETTLE)


def settle(script, *, billable=True, cost=1, marker="", cost_fields=()):
    args = [int(billable), cost, FIELD, PENDING_TTL_MS, IDEMPOTENCY_TTL_SECONDS]
    for name, increment in cost_fields:
        args += [name, increment]
    return script(keys=[QUOTA_KEY, PENDING_KEY, marker], args=args)


def reserve(client, units: int, ttl_ms: int = 3_600_000) -> None:
    client.set(QUOTA_KEY, units, px=ttl_ms)


def pending(client) -> dict[str, int]:
    return {name.decode(): int(value) for name, value in client.hgetall(PENDING_KEY).items()}


def test_it_refuses_a_call_with_two_keys(script):
    with pytest.raises(ResponseError, match="expected 3 keys"):
        script(keys=[QUOTA_KEY, PENDING_KEY], args=[1, 1, FIELD, PENDING_TTL_MS, 86400])


def test_it_refuses_a_call_with_four_arguments(script):
    with pytest.raises(ResponseError, match="expected 5 arguments"):
        script(keys=[QUOTA_KEY, PENDING_KEY, ""], args=[1, 1, FIELD, PENDING_TTL_MS])


def test_it_refuses_a_cost_field_without_its_increment(script):
    with pytest.raises(ResponseError, match="field/increment pairs"):
        script(keys=[QUOTA_KEY, PENDING_KEY, ""], args=[1, 1, FIELD, PENDING_TTL_MS, 86400, COST_FIELD])


def test_a_refused_call_writes_nothing(script, client):
    reserve(client, 1)
    with pytest.raises(ResponseError):
        script(keys=[QUOTA_KEY, PENDING_KEY, ""], args=[0, 1, FIELD, PENDING_TTL_MS, 86400, COST_FIELD])
    assert (client.get(QUOTA_KEY), client.exists(PENDING_KEY)) == (b"1", 0)


def test_a_billable_request_is_counted_in_the_pending_hash(script, client):
    reserve(client, 1)
    settle(script, cost=3)
    assert pending(client) == {FIELD: 3}


def test_a_billable_request_returns_billed_and_the_units_used(script, client):
    reserve(client, 4)
    assert settle(script) == [1, 4]


def test_a_billable_request_keeps_its_reservation(script, client):
    reserve(client, 4)
    settle(script)
    assert client.get(QUOTA_KEY) == b"4"


def test_billable_requests_add_up(script, client):
    reserve(client, 3)
    for _ in range(3):
        settle(script)
    assert pending(client) == {FIELD: 3}


def test_a_non_billable_request_gives_its_units_back(script, client):
    reserve(client, 5)
    assert settle(script, billable=False, cost=3) == [0, 2]
    assert client.get(QUOTA_KEY) == b"2"


def test_a_non_billable_request_is_not_counted(script, client):
    reserve(client, 1)
    settle(script, billable=False)
    assert pending(client) == {}


def test_a_refund_never_goes_below_zero(script, client):
    reserve(client, 1)
    assert settle(script, billable=False, cost=3) == [0, 0]
    assert client.get(QUOTA_KEY) == b"0"


def test_a_refund_without_a_counter_creates_none(script, client):
    assert settle(script, billable=False) == [0, 0]
    assert client.exists(QUOTA_KEY) == 0


def test_a_refund_keeps_the_quota_counters_ttl(script, client):
    reserve(client, 5, ttl_ms=90_000)
    settle(script, billable=False)
    assert 85_000 < client.pttl(QUOTA_KEY) <= 90_000


def test_a_billable_request_sets_the_pending_hashs_ttl(script, client):
    settle(script)
    assert PENDING_TTL_MS - 5_000 < client.pttl(PENDING_KEY) <= PENDING_TTL_MS


def test_a_cost_sample_alone_sets_the_pending_hashs_ttl(script, client):
    settle(script, billable=False, cost_fields=[(COST_FIELD, 1)])
    assert PENDING_TTL_MS - 5_000 < client.pttl(PENDING_KEY) <= PENDING_TTL_MS


def test_a_billable_request_renews_the_pending_hashs_ttl(script, client):
    settle(script)
    client.pexpire(PENDING_KEY, 1_000)
    settle(script)
    assert client.pttl(PENDING_KEY) > 1_000


def test_cost_fields_are_added_when_billed(script, client):
    reserve(client, 1)
    settle(script, cost_fields=[(COST_FIELD, 1), ("c|1800000000|api:echo|bytes_out", 120)])
    assert pending(client) == {FIELD: 1, COST_FIELD: 1, "c|1800000000|api:echo|bytes_out": 120}


def test_cost_fields_are_added_when_not_billed(script, client):
    reserve(client, 1)
    settle(script, billable=False, cost_fields=[(COST_FIELD, 1)])
    assert pending(client) == {COST_FIELD: 1}


def test_a_first_request_with_an_idempotency_key_is_billed(script, client):
    reserve(client, 1)
    assert settle(script, marker=MARKER) == [1, 1]


def test_a_billed_idempotency_key_is_remembered_for_24_hours(script, client):
    settle(script, marker=MARKER)
    assert IDEMPOTENCY_TTL_SECONDS - 5 < client.ttl(MARKER) <= 24 * 3600


def test_a_retry_is_not_billed(script, client):
    reserve(client, 1)
    settle(script, marker=MARKER)
    reserve(client, 2)
    assert settle(script, marker=MARKER) == [0, 1]
    assert pending(client) == {FIELD: 1}


def test_a_retry_does_not_extend_the_markers_ttl(script, client):
    settle(script, marker=MARKER)
    client.expire(MARKER, 100)
    settle(script, marker=MARKER)
    assert client.ttl(MARKER) <= 100


def test_a_failed_request_does_not_mark_its_idempotency_key(script, client):
    settle(script, billable=False, marker=MARKER)
    assert client.exists(MARKER) == 0


def test_a_retry_after_a_failed_first_attempt_is_billed(script, client):
    reserve(client, 1)
    settle(script, billable=False, marker=MARKER)
    reserve(client, 1)
    assert settle(script, marker=MARKER) == [1, 1]


def test_the_same_idempotency_key_of_another_customer_is_another_marker():
    assert idempotency_marker(42, "order-1") != idempotency_marker(43, "order-1")


def test_every_key_of_a_customer_is_in_one_cluster_slot():
    keys = [QUOTA_KEY, PENDING_KEY, MARKER, snapshot_key(42)]
    assert len({key_slot(key.encode()) for key in keys}) == 1
