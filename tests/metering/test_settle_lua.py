"""metering/lua/settle.lua, called directly with redis-py (EVALSHA).

KEYS: quota counter, pending usage hash, the claimed Idempotency-Key's
record (absent if none). ARGV: billed at check ("1"/"0"), billable ("1"/"0"),
cost, usage field, pending TTL ms, record TTL s, the claim's token, "stored"
or "not_stored", the response's status, content type and body, the deadline
(Redis time in ms, "0" for none). Returns {billed, used}, {-1, 0} past the deadline.

It runs only when the check's optimistic billing must change: a request
billed at the check that failed (unbilled, its units given back), or one
that claimed an Idempotency-Key (reserved only at the check; billed if it
succeeded, its response kept on the claim).
"""

import pytest
from django_redis import get_redis_connection
from redis.crc import key_slot
from redis.exceptions import ResponseError

from metering.keys import idempotency_record, redis_key, snapshot_key
from metering.limiter.contract import PENDING_TTL_MS
from metering.limiter.redis_backend import SETTLE

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
QUOTA_KEY = redis_key("quota", 42, 1_800_000_000)
PENDING_KEY = redis_key("usage", 42)
MARKER = idempotency_record(42, "order-1")
RESPONSE = ["tok", "stored", 200, "application/json", b'{"query": {}}']
FIELD = "u|1800000000|7|api:echo"
OTHER_FIELD = "u|1800000000|7|api:primes"


@pytest.fixture
def client(redis_layout):
    """The default cache's client, on a single Redis and on a Redis Cluster."""
    return get_redis_connection("default")


@pytest.fixture
def script(client):
    return client.register_script(SETTLE)


def keys_of(customer_id: int, marker: str = "") -> list[str]:
    keys = [redis_key("quota", customer_id, 1_800_000_000), redis_key("usage", customer_id)]
    return [*keys, marker] if marker else keys


def settle(script, *, billed_at_check=False, billable=True, cost=1, marker="", customer_id=42, deadline=0):
    args = [
        int(billed_at_check),
        int(billable),
        cost,
        FIELD,
        PENDING_TTL_MS,
        IDEMPOTENCY_TTL_SECONDS,
        *RESPONSE,
        deadline,
    ]
    return script(keys=keys_of(customer_id, marker), args=args)


def unbill(script, *, cost=1):
    """A request the check billed optimistically, whose response was not billable."""
    return settle(script, billed_at_check=True, billable=False, cost=cost)


def reserve(client, units: int, ttl_ms: int = 3_600_000, *, customer_id: int = 42) -> None:
    """The quota counter as check_and_reserve leaves it."""
    client.set(keys_of(customer_id)[0], units, px=ttl_ms)


def bill_at_check(client, units: int, field: str = FIELD) -> None:
    """What check_and_reserve writes to the pending hash when given a usage field."""
    client.hincrby(PENDING_KEY, field, units)
    client.pexpire(PENDING_KEY, PENDING_TTL_MS)


def pending(client, customer_id: int = 42) -> dict[str, int]:
    raw = client.hgetall(redis_key("usage", customer_id))
    return {name.decode(): int(value) for name, value in raw.items()}


# The call's shape


def test_it_refuses_a_call_with_one_key(script):
    with pytest.raises(ResponseError, match="expected 2 or 3 keys"):
        script(keys=[QUOTA_KEY], args=[1, 0, 1, FIELD, PENDING_TTL_MS, 86400, *RESPONSE, 0])


def test_it_refuses_a_call_with_five_arguments(script):
    with pytest.raises(ResponseError, match="expected 12 arguments"):
        script(keys=[QUOTA_KEY, PENDING_KEY], args=[1, 0, 1, FIELD, PENDING_TTL_MS])


def test_it_refuses_a_call_with_eleven_arguments(script):
    with pytest.raises(ResponseError, match="expected 12 arguments"):
        script(keys=[QUOTA_KEY, PENDING_KEY], args=[1, 0, 1, FIELD, PENDING_TTL_MS, 86400, *RESPONSE])


def test_without_a_claim_it_names_only_keys_in_the_customers_slot(script, client):
    """No empty-string key: "" hashes to slot 0, another node on a cluster."""
    bill_at_check(client, 1)
    assert settle(script, billed_at_check=True, billable=False) == [0, 0]


def test_a_call_past_its_deadline_changes_nothing(script, client):
    reserve(client, 1)
    bill_at_check(client, 1)
    seconds, microseconds = client.time()
    past = seconds * 1000 + microseconds // 1000 - 1
    assert settle(script, billed_at_check=True, billable=False, deadline=past) == [-1, 0]
    assert (client.get(QUOTA_KEY), pending(client)) == (b"1", {FIELD: 1})


def test_a_call_before_its_deadline_runs(script, client):
    reserve(client, 1)
    bill_at_check(client, 1)
    seconds, _ = client.time()
    assert settle(script, billed_at_check=True, billable=False, deadline=(seconds + 60) * 1000) == [0, 0]


def test_a_refused_call_writes_nothing(script, client):
    reserve(client, 1)
    bill_at_check(client, 1)
    with pytest.raises(ResponseError):
        script(keys=[QUOTA_KEY, PENDING_KEY], args=[1, 0, 1, FIELD, PENDING_TTL_MS])
    assert (client.get(QUOTA_KEY), pending(client)) == (b"1", {FIELD: 1})


# Unbilling a failure billed optimistically at the check


def test_a_failure_billed_at_the_check_is_unbilled(script, client):
    reserve(client, 3)
    bill_at_check(client, 3)
    assert unbill(script, cost=3)[0] == 0
    assert pending(client) == {}


def test_unbilling_removes_only_the_failures_units(script, client):
    reserve(client, 5)
    bill_at_check(client, 5)  # four successes and the failure, same key, endpoint and hour
    unbill(script)
    assert pending(client) == {FIELD: 4}


def test_unbilling_leaves_other_fields_alone(script, client):
    reserve(client, 3)
    bill_at_check(client, 2, OTHER_FIELD)
    bill_at_check(client, 1)
    unbill(script)
    assert pending(client) == {OTHER_FIELD: 2}


def test_unbilling_deletes_a_field_that_reaches_zero(script, client):
    reserve(client, 1)
    bill_at_check(client, 1)
    unbill(script)
    assert client.hexists(PENDING_KEY, FIELD) == 0


def test_a_failure_gives_its_units_back(script, client):
    reserve(client, 5)
    bill_at_check(client, 5)
    assert unbill(script, cost=3) == [0, 2]
    assert client.get(QUOTA_KEY) == b"2"


def test_unbilling_after_a_flush_moved_the_units_leaves_a_negative_count(script, client):
    reserve(client, 3)
    # The flush moved the optimistic bill to PostgreSQL between check and settle:
    # the next flush subtracts the units there.
    unbill(script, cost=3)
    assert pending(client) == {FIELD: -3}


def test_unbilling_after_a_flush_nets_with_later_requests(script, client):
    reserve(client, 3)
    unbill(script)  # its unit had been flushed
    bill_at_check(client, 2)  # two later requests of the same key, endpoint and hour
    assert pending(client) == {FIELD: 1}


def test_a_negative_count_keeps_the_pending_hash_ttl(script, client):
    unbill(script)
    assert PENDING_TTL_MS - 5_000 < client.pttl(PENDING_KEY) <= PENDING_TTL_MS


def test_unbilling_renews_the_pending_hash_ttl(script, client):
    bill_at_check(client, 2)
    client.pexpire(PENDING_KEY, 1_000)
    unbill(script)
    assert client.pttl(PENDING_KEY) > 1_000


def test_a_success_billed_at_the_check_is_left_as_billed(script, client):
    reserve(client, 4)
    bill_at_check(client, 1)
    assert settle(script, billed_at_check=True, billable=True) == [1, 4]
    assert (pending(client), client.get(QUOTA_KEY)) == ({FIELD: 1}, b"4")


# Refunds of the quota counter


def test_a_refund_never_goes_below_zero(script, client):
    reserve(client, 1)
    assert unbill(script, cost=3) == [0, 0]
    assert client.get(QUOTA_KEY) == b"0"


def test_a_refund_without_a_counter_creates_none(script, client):
    assert unbill(script) == [0, 0]
    assert client.exists(QUOTA_KEY) == 0


def test_a_refund_keeps_the_quota_counters_ttl(script, client):
    reserve(client, 5, ttl_ms=90_000)
    unbill(script)
    assert 85_000 < client.pttl(QUOTA_KEY) <= 90_000


def test_a_failure_that_was_only_reserved_gives_its_units_back_and_bills_nothing(script, client):
    reserve(client, 5)
    assert settle(script, billable=False, cost=2, marker=MARKER) == [0, 3]
    assert (client.get(QUOTA_KEY), client.exists(PENDING_KEY)) == (b"3", 0)


# Requests with an Idempotency-Key: reserved at the check, decided here


def test_a_first_request_with_an_idempotency_key_is_billed(script, client):
    reserve(client, 1)
    assert settle(script, marker=MARKER) == [1, 1]
    assert pending(client) == {FIELD: 1}


def test_a_billed_idempotency_request_keeps_its_reservation(script, client):
    reserve(client, 4)
    settle(script, cost=3, marker=MARKER)
    assert (client.get(QUOTA_KEY), pending(client)) == (b"4", {FIELD: 3})


def test_billing_an_idempotency_request_sets_the_pending_hash_ttl(script, client):
    settle(script, marker=MARKER)
    assert PENDING_TTL_MS - 5_000 < client.pttl(PENDING_KEY) <= PENDING_TTL_MS


def test_billing_an_idempotency_request_renews_the_pending_hash_ttl(script, client):
    settle(script, marker=MARKER)
    client.pexpire(PENDING_KEY, 1_000)
    settle(script, marker=idempotency_record(42, "order-2"))
    assert client.pttl(PENDING_KEY) > 1_000


def claim(client, record: str = MARKER, token: str = "tok") -> None:
    """A claim as idempotency_claim.lua leaves it while its request runs."""
    client.hset(record, mapping={"fingerprint": "fp", "state": "running", "token": token})
    client.pexpire(record, 60_000)


def test_a_success_keeps_its_response_on_its_claim(script, client):
    claim(client)
    settle(script, marker=MARKER)
    kept = client.hgetall(MARKER)
    assert kept == {
        b"fingerprint": b"fp",
        b"state": b"stored",
        b"status": b"200",
        b"content_type": b"application/json",
        b"body": b'{"query": {}}',
    }


def test_a_kept_response_is_remembered_for_24_hours(script, client):
    claim(client)
    settle(script, marker=MARKER)
    assert 24 * 3600 - 5 < client.ttl(MARKER) <= 24 * 3600


def test_a_failure_deletes_its_claim_so_the_next_attempt_runs(script, client):
    claim(client)
    assert settle(script, billable=False, marker=MARKER) == [0, 0]
    assert client.exists(MARKER) == 0


def test_a_claim_that_lapsed_and_was_taken_by_another_request_is_left_alone(script, client):
    claim(client, token="another")
    settle(script, billable=False, marker=MARKER)
    assert client.hget(MARKER, "token") == b"another"


def test_a_success_whose_claim_lapsed_is_still_billed(script, client):
    reserve(client, 1)
    assert settle(script, marker=MARKER) == [1, 1]
    assert client.exists(MARKER) == 0


def test_the_same_idempotency_key_of_another_customer_is_another_record():
    assert idempotency_record(42, "order-1") != idempotency_record(43, "order-1")


def test_every_key_of_a_customer_is_in_one_cluster_slot():
    keys = [QUOTA_KEY, PENDING_KEY, MARKER, snapshot_key(42)]
    assert len({key_slot(key.encode()) for key in keys}) == 1
