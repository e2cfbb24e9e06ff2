"""metering/lua/idempotency_claim.lua, called directly with redis-py (EVALSHA).

KEYS: the Idempotency-Key's record. ARGV: fingerprint, token, claim ms, deadline
(Redis time in ms, 0 for none).
Returns {outcome, ...}: claimed, reused, in_use (ms left), stored (status,
content type, body), not_stored, late (past the deadline).
"""

import pytest
from django_redis import get_redis_connection
from redis.exceptions import ResponseError

from metering.keys import idempotency_record
from metering.limiter.redis_backend import IDEMPOTENCY_CLAIM

RECORD = idempotency_record(42, "order-1")


@pytest.fixture
def client(redis_layout):
    """The default cache's client, on a single Redis and on a Redis Cluster."""
    return get_redis_connection("default")


@pytest.fixture
def script(client):
    return client.register_script(IDEMPOTENCY_CLAIM)


def claim(script, fingerprint="fp", token="tok", deadline=0):
    return script(keys=[RECORD], args=[fingerprint, token, 60_000, deadline])


def test_a_claim_past_its_deadline_reads_and_writes_nothing(script, client):
    seconds, microseconds = client.time()
    assert claim(script, deadline=seconds * 1000 + microseconds // 1000 - 1) == [b"late"]
    assert not client.exists(RECORD)


def test_it_refuses_a_call_with_two_arguments(script):
    with pytest.raises(ResponseError, match="expected 4 arguments"):
        script(keys=[RECORD], args=["fp", "tok"])


def test_a_free_key_is_claimed(script):
    assert claim(script) == [b"claimed"]


def test_a_claim_holds_the_key_for_the_claim_time(script, client):
    claim(script)
    assert 59_000 < client.pttl(RECORD) <= 60_000


def test_a_second_claim_with_the_same_fingerprint_is_in_use(script):
    claim(script)
    outcome, left = claim(script, token="other")
    assert (outcome, 59_000 < left <= 60_000) == (b"in_use", True)


def test_two_claims_never_both_win(script):
    assert [claim(script, token=str(n))[0] for n in range(3)] == [b"claimed", b"in_use", b"in_use"]


def test_another_fingerprint_is_reused(script):
    claim(script)
    assert claim(script, fingerprint="other") == [b"reused"]


def test_a_stored_response_is_returned(script, client):
    claim(script)
    client.hset(
        RECORD, mapping={"state": "stored", "status": 201, "content_type": "text/plain", "body": "ok"}
    )
    assert claim(script) == [b"stored", b"201", b"text/plain", b"ok"]


def test_a_response_not_stored_is_said_so(script, client):
    claim(script)
    client.hset(RECORD, "state", "not_stored")
    assert claim(script) == [b"not_stored"]
