"""metering/lua/cancel_check.lua against check_and_reserve.lua, called directly:
a check whose client gave up (a 503) ends unbilled and unreserved whichever
of the two scripts Redis runs first."""

import pytest
from django_redis import get_redis_connection

from metering.limiter.contract import CHECK_RECORD_TTL_MS, PENDING_TTL_MS
from metering.limiter.redis_backend import CANCEL_CHECK, CHECK_AND_RESERVE
from tests.metering.test_lua import BURST_KEY, FIELD, PENDING_KEY, QUOTA_KEY, RECORDS, call, pending


@pytest.fixture
def client():
    return get_redis_connection("default")


@pytest.fixture
def check(client):
    return client.register_script(CHECK_AND_RESERVE)


@pytest.fixture
def cancel(client):
    script = client.register_script(CANCEL_CHECK)

    def run(record, *, cost=1, bill=FIELD):
        args = [cost, bill, CHECK_RECORD_TTL_MS, PENDING_TTL_MS]
        return script(keys=[record, QUOTA_KEY, PENDING_KEY], args=args)

    return run


def test_a_check_cancelled_before_it_runs_refuses_and_bills_nothing(client, check, cancel):
    call(check, bill=FIELD)  # an earlier request, served
    record = next(RECORDS)
    assert cancel(record) == 1
    assert call(check, bill=FIELD, record=record)[1] == 4
    assert pending(client) == {FIELD: 1}
    assert client.get(QUOTA_KEY) == b"1"


def test_a_check_cancelled_after_it_ran_gives_its_units_back_and_unbills_them(client, check, cancel):
    call(check, bill=FIELD)
    record = next(RECORDS)
    call(check, cost=3, bill=FIELD, record=record)
    assert cancel(record, cost=3) == 2
    assert pending(client) == {FIELD: 1}
    assert client.get(QUOTA_KEY) == b"1"


def test_a_cancel_that_runs_twice_gives_back_once(client, check, cancel):
    call(check, bill=FIELD)
    record = next(RECORDS)
    call(check, bill=FIELD, record=record)
    cancel(record)
    assert cancel(record) == 0
    assert pending(client) == {FIELD: 1}
    assert client.get(QUOTA_KEY) == b"1"


def test_a_cancelled_check_that_only_reserved_gives_back_its_units_and_bills_nothing(client, check, cancel):
    record = next(RECORDS)
    call(check, cost=2, record=record)  # an Idempotency-Key request: reserved, billed later
    cancel(record, cost=2, bill="")
    assert client.get(QUOTA_KEY) == b"0"
    assert client.exists(PENDING_KEY) == 0


def test_a_cancel_of_a_check_the_quota_refused_gives_nothing_back(client, check, cancel):
    call(check, quota=1, bill=FIELD)
    record = next(RECORDS)
    call(check, quota=1, bill=FIELD, record=record)
    assert cancel(record) == 1
    assert pending(client) == {FIELD: 1}
    assert client.get(QUOTA_KEY) == b"1"


def test_a_check_repeated_with_the_same_record_reserves_once(client, check):
    record = next(RECORDS)
    call(check, bill=FIELD, record=record)
    assert call(check, bill=FIELD, record=record)[1] == 4
    assert pending(client) == {FIELD: 1}


def test_a_check_never_cancelled_is_billed_once(client, check):
    call(check, bill=FIELD)
    assert pending(client) == {FIELD: 1}
    assert client.get(QUOTA_KEY) == b"1"


def test_the_cancel_marker_has_a_ttl_and_the_customers_hash_tag(client, cancel):
    record = next(RECORDS)
    cancel(record)
    assert 0 < client.pttl(record) <= CHECK_RECORD_TTL_MS
    assert b":{c42}:" in record.encode() and ":{c42}" in BURST_KEY
