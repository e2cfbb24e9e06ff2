"""The usage flush (metering/flush.py): Redis to PostgreSQL, crash-safe and idempotent.

A crash is simulated by running the flush's steps (take, read, apply,
discard) only part way, then running a whole flush as the next beat would.
"""

import io
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.db.models import Sum
from django.utils import timezone
from django_redis import get_redis_connection

from apikeys.services import api_key_create
from metering import flush
from metering.cost import CostSample, cost_aggregator
from metering.flush import (
    FlushResult,
    apply_snapshot,
    discard_snapshot,
    flush_usage,
    read_snapshot,
    take_snapshot,
)
from metering.keys import hour_of, pending_key, snapshot_key, usage_field
from metering.limiter import Limits, get_limiter
from metering.models import EndpointCost, FlushedBatch, UsageRecord
from metering.selectors import usage_in_period
from metering.usage import settle
from plans.periods import period_bounds
from plans.services import customer_get_or_create
from tests.utils import run_together

STEPS = ["take_snapshot", "read_snapshot", "apply_snapshot", "discard_snapshot"]


@pytest.fixture
def redis(redis_layout):
    """The default cache's client, on a single Redis and on a Redis Cluster."""
    return get_redis_connection("default")


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def period():
    return period_bounds("month", datetime.now(UTC))


def serve(created_key, units: int = 1, *, endpoint: str = "api:echo") -> None:
    """Admit and bill `units` requests as the throttle does, with their cost samples."""
    start, end = period()
    limits = Limits(
        customer_id=created_key.api_key.customer_id,
        burst=1_000_000,
        quota=1_000_000,
        period_start=start,
        period_end=end,
    )
    for _ in range(units):
        now = now_ms()
        field = usage_field(hour_of(now), created_key.api_key.pk, endpoint)
        assert get_limiter().check(limits, cost=1, now_ms=now, bill_field=field).admitted
        cost_aggregator.add(hour_of(now), endpoint, CostSample(cpu_ms=1.5, bytes_out=100))


def other_key(customer):
    return api_key_create(customer=customer, name="second")


def recorded(customer) -> int:
    return UsageRecord.objects.filter(customer=customer).aggregate(total=Sum("count"))["total"] or 0


def cost_requests(endpoint: str = "api:echo") -> int:
    rows = EndpointCost.objects.filter(endpoint=endpoint, metric="requests")
    return rows.aggregate(total=Sum("value"))["total"] or 0


def used(customer) -> int:
    """What the usage API reports: PostgreSQL plus what Redis still holds."""
    start, end = period()
    return usage_in_period(customer_id=customer.pk, start=start, end=end).total


def crash_after(step: str, redis, customer) -> None:
    """Run the flush's steps for one customer up to `step`, then stop as if killed."""
    batch = take_snapshot(redis, customer.pk)
    if step == "take_snapshot":
        return
    fields = read_snapshot(redis, customer.pk)
    if step == "read_snapshot":
        return
    apply_snapshot(customer.pk, batch, fields)
    if step == "apply_snapshot":
        return
    discard_snapshot(redis, customer.pk, batch)


def metering_keys(redis) -> list[bytes]:
    # SCAN, not KEYS: on a cluster SCAN reaches every primary, KEYS only one.
    return [*redis.scan_iter(match="metering:v1:usage:*"), *redis.scan_iter(match="metering:v1:flushing:*")]


class RacingClient:
    """A Redis client that runs `race` once, just before the first write it is asked for.

    Pipelines made from it share the one race, so a WATCH/MULTI transaction
    sees the race between its read and its EXEC.
    """

    WRITES = frozenset({"delete", "unlink", "execute", "eval", "evalsha"})

    def __init__(self, client, race):
        self._client = client
        self._races = race if isinstance(race, list) else [race]

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if name in self.WRITES and self._races:
            self._races.pop()()
        if name == "pipeline":
            return lambda *args, **kwargs: RacingClient(attribute(*args, **kwargs), self._races)
        if name == "get_node":  # a cluster: the flush pipelines through each node's own client
            return lambda *args, **kwargs: RacingNode(attribute(*args, **kwargs), self._races)
        return attribute

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return self._client.__exit__(*exc_info)


class RacingNode:
    """A cluster node whose client races as RacingClient does."""

    def __init__(self, node, races):
        self.redis_connection = RacingClient(node.redis_connection, races)


def test_a_flush_moves_pending_units_to_usage_records(redis, customer, api_key):
    serve(api_key, 3)
    flush_usage()
    assert recorded(customer) == 3


def test_a_flush_records_the_key_and_endpoint(redis, customer, api_key):
    serve(api_key, 2, endpoint="api:primes")
    flush_usage()
    record = UsageRecord.objects.get(customer=customer)
    assert (record.api_key_id, record.endpoint) == (api_key.api_key.pk, "api:primes")


def test_a_flush_moves_cost_samples_to_endpoint_costs(redis, customer, api_key):
    serve(api_key, 3)
    flush_usage()
    assert cost_requests() == 3


def test_a_flush_empties_redis(redis, customer, api_key):
    serve(api_key, 3)
    flush_usage()
    assert metering_keys(redis) == []


def test_a_flush_reports_the_units_and_customers_it_moved(redis, customer, other_customer, api_key):
    serve(api_key, 3)
    serve(other_key(other_customer), 2)
    assert flush_usage() == FlushResult(customers=2, units=5)


def test_a_flush_keeps_customers_apart(redis, customer, other_customer, api_key):
    serve(api_key, 3)
    serve(other_key(other_customer), 2)
    flush_usage()
    assert (recorded(customer), recorded(other_customer)) == (3, 2)


def test_a_flush_with_nothing_pending_moves_nothing(redis, customer):
    assert flush_usage() == FlushResult(customers=0, units=0)


def test_a_second_flush_adds_nothing(redis, customer, api_key):
    serve(api_key, 3)
    flush_usage()
    assert flush_usage() == FlushResult(customers=0, units=0)
    assert (recorded(customer), cost_requests()) == (3, 3)


def test_successive_flushes_add_up(redis, customer, api_key):
    serve(api_key, 3)
    flush_usage()
    serve(api_key, 4)
    flush_usage()
    assert (recorded(customer), cost_requests()) == (7, 7)


@pytest.mark.parametrize("step", STEPS)
def test_a_flush_killed_after_any_step_loses_and_doubles_nothing(step, redis, customer, api_key):
    serve(api_key, 3)
    crash_after(step, redis, customer)
    flush_usage()
    assert (recorded(customer), cost_requests()) == (3, 3)


@pytest.mark.parametrize("step", STEPS)
def test_the_next_flush_empties_redis_after_a_crash_at_any_step(step, redis, customer, api_key):
    serve(api_key, 3)
    crash_after(step, redis, customer)
    flush_usage()
    assert metering_keys(redis) == []


@pytest.mark.parametrize("step", STEPS)
def test_usage_that_arrives_after_a_crash_is_flushed_too(step, redis, customer, api_key):
    serve(api_key, 3)
    crash_after(step, redis, customer)
    serve(api_key, 2)
    flush_usage()
    assert (recorded(customer), cost_requests()) == (5, 5)


@pytest.mark.parametrize("step", STEPS)
def test_the_usage_api_is_exact_after_a_crash_at_any_step(step, redis, customer, api_key):
    serve(api_key, 3)
    crash_after(step, redis, customer)
    serve(api_key, 2)
    assert used(customer) == 5


def test_an_applied_snapshot_not_yet_discarded_is_not_counted_twice(redis, customer, api_key):
    serve(api_key, 3)
    crash_after("apply_snapshot", redis, customer)
    assert (used(customer), recorded(customer)) == (3, 3)


def test_the_usage_api_is_exact_at_every_step_of_a_flush(redis, customer, api_key):
    UsageRecord.objects.create(
        customer=customer, api_key=api_key.api_key, endpoint="api:echo", hour=period()[0], count=10
    )
    serve(api_key, 3)
    seen = [used(customer)]
    batch = take_snapshot(redis, customer.pk)
    seen.append(used(customer))
    fields = read_snapshot(redis, customer.pk)
    apply_snapshot(customer.pk, batch, fields)
    seen.append(used(customer))
    discard_snapshot(redis, customer.pk, batch)
    seen.append(used(customer))
    assert seen == [13, 13, 13, 13]


def test_a_snapshot_is_applied_only_once(redis, customer, api_key):
    serve(api_key, 3)
    batch = take_snapshot(redis, customer.pk)
    fields = read_snapshot(redis, customer.pk)
    assert [apply_snapshot(customer.pk, batch, fields) for _ in range(2)] == [True, False]
    assert recorded(customer) == 3


def test_a_left_snapshot_is_returned_instead_of_a_new_one(redis, customer, api_key):
    serve(api_key, 3)
    batch = take_snapshot(redis, customer.pk)
    serve(api_key, 2)
    assert take_snapshot(redis, customer.pk) == batch


def test_requests_between_snapshot_and_apply_stay_pending_for_the_next_batch(redis, customer, api_key):
    serve(api_key, 3)
    batch = take_snapshot(redis, customer.pk)
    serve(api_key, 2)
    apply_snapshot(customer.pk, batch, read_snapshot(redis, customer.pk))
    discard_snapshot(redis, customer.pk, batch)
    field = usage_field(hour_of(now_ms()), api_key.api_key.pk, "api:echo")
    assert (recorded(customer), int(redis.hget(pending_key(customer.pk), field))) == (3, 2)


def test_requests_between_snapshot_and_apply_land_in_the_next_flush(redis, customer, api_key):
    serve(api_key, 3)
    take_snapshot(redis, customer.pk)
    serve(api_key, 2)
    flush_usage()
    assert (recorded(customer), used(customer)) == (5, 5)


def test_a_crash_inside_the_apply_transaction_adds_nothing(redis, customer, api_key, monkeypatch):
    serve(api_key, 3)
    monkeypatch.setattr(flush, "add_usage", add_usage_then_die)
    with pytest.raises(SystemExit):
        flush_usage()
    assert (recorded(customer), FlushedBatch.objects.count()) == (0, 0)


_add_usage = flush.add_usage


def add_usage_then_die(fields_by_customer):
    """The worker dies inside the transaction, after the rows were written."""
    _add_usage(fields_by_customer)
    assert UsageRecord.objects.exists()
    raise SystemExit("worker killed")


def test_a_crash_inside_the_apply_transaction_keeps_the_snapshot(redis, customer, api_key, monkeypatch):
    serve(api_key, 3)
    monkeypatch.setattr(flush, "add_usage", add_usage_then_die)
    with pytest.raises(SystemExit):
        flush_usage()
    assert redis.exists(snapshot_key(customer.pk)) == 1


def test_the_usage_api_is_exact_after_a_crash_inside_the_apply_transaction(
    redis, customer, api_key, monkeypatch
):
    serve(api_key, 3)
    monkeypatch.setattr(flush, "add_usage", add_usage_then_die)
    with pytest.raises(SystemExit):
        flush_usage()
    assert used(customer) == 3


def test_the_next_flush_recovers_from_a_crash_inside_the_apply_transaction(
    redis, customer, api_key, monkeypatch
):
    serve(api_key, 3)
    monkeypatch.setattr(flush, "add_usage", add_usage_then_die)
    with pytest.raises(SystemExit):
        flush_usage()
    monkeypatch.undo()
    flush_usage()
    assert (recorded(customer), cost_requests(), metering_keys(redis)) == (3, 3, [])


def test_a_database_error_while_applying_keeps_the_snapshot_for_the_next_flush(
    redis, customer, api_key, monkeypatch
):
    def integrity_error(fields):
        raise IntegrityError("violates foreign key constraint")

    serve(api_key, 3)
    monkeypatch.setattr(flush, "add_cost_fields", integrity_error)
    with pytest.raises(IntegrityError):
        flush_usage()
    monkeypatch.undo()
    flush_usage()
    assert (recorded(customer), cost_requests()) == (3, 3)


def unbill_one(created_key, *, endpoint: str = "api:echo") -> None:
    """A request billed at the check fails: the middleware's settle unbills it."""
    start, end = period()
    limits = Limits(
        customer_id=created_key.api_key.customer_id,
        burst=1_000_000,
        quota=1_000_000,
        period_start=start,
        period_end=end,
    )
    now = now_ms()
    field = usage_field(hour_of(now), created_key.api_key.pk, endpoint)
    decision = get_limiter().check(limits, cost=1, now_ms=now, bill_field=field)
    flush_usage()  # the flush moves the optimistic bill while the request runs
    settlement = settle(decision, billed_at_check=True, billable=False, field=field, cost=1)
    assert not settlement.billed


def test_the_usage_api_leaves_out_a_failure_unbilled_after_a_flush(redis, customer, api_key):
    serve(api_key, 2)
    unbill_one(api_key)
    assert (recorded(customer), used(customer)) == (3, 2)


def test_a_failure_unbilled_after_a_flush_is_subtracted_by_the_next_flush(redis, customer, api_key):
    serve(api_key, 2)
    unbill_one(api_key)
    flush_usage()
    assert (recorded(customer), used(customer), metering_keys(redis)) == (2, 2, [])


def test_a_discard_leaves_a_newer_snapshot_taken_meanwhile(redis, customer, api_key):
    """Flush A applied batch X; flush B, which also found X, discards it and
    snapshots newer usage as Y before A deletes: A must not delete Y."""
    serve(api_key, 3)
    batch = take_snapshot(redis, customer.pk)
    apply_snapshot(customer.pk, batch, read_snapshot(redis, customer.pk))

    def flush_b_overtakes():
        discard_snapshot(redis, customer.pk, batch)
        serve(api_key, 2)
        take_snapshot(redis, customer.pk)

    discard_snapshot(RacingClient(redis, flush_b_overtakes), customer.pk, batch)
    flush_usage()
    assert recorded(customer) == 5


def test_usage_of_an_unknown_customer_is_dropped_without_failing_the_flush(redis, customer, api_key):
    """metering.protection refuses deleting a customer with pending usage; a
    hash of a customer gone some other way (raw SQL) must not stop the flush."""
    serve(api_key, 3)
    # Moved field by field, not RENAMEd: on a cluster the two keys are in different slots.
    redis.hset(pending_key(customer.pk + 1000), mapping=redis.hgetall(pending_key(customer.pk)))
    redis.delete(pending_key(customer.pk))
    flush_usage()
    assert (UsageRecord.objects.count(), metering_keys(redis)) == (0, [])


def test_the_flush_usage_command_prints_the_units_moved(redis, customer, api_key):
    serve(api_key, 3)
    out = io.StringIO()
    call_command("flush_usage", stdout=out)
    assert out.getvalue().strip() == "Flushed 3 billable units for 1 customers."


def flush_in_threads(count: int) -> list[BaseException]:
    """Flushes started at once; the errors any of them raised."""
    return [outcome for outcome in run_together(count, flush_usage) if isinstance(outcome, BaseException)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_flushes_never_count_twice(redis, customer, other_customer, api_key):
    bob_key = other_key(other_customer)
    for _ in range(15):
        serve(api_key, 3)
        serve(bob_key, 2)
        assert flush_in_threads(4) == []
    assert (recorded(customer), recorded(other_customer), cost_requests()) == (45, 30, 75)


@pytest.mark.django_db(transaction=True)
def test_concurrent_flushes_lose_nothing_while_requests_keep_arriving(redis, customer, api_key):
    stop = threading.Event()
    served = []

    def traffic():
        while not stop.is_set():
            serve(api_key)
            served.append(1)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        errors = [error for _ in range(15) for error in flush_in_threads(3)]
    finally:
        stop.set()
        sender.join()
    flush_usage()
    assert errors == []
    assert (recorded(customer), cost_requests(), metering_keys(redis)) == (len(served), len(served), [])


def customers_with_pending_usage_in_redis(redis, count: int) -> list:
    """`count` customers, each with a key and 2 units pending in Redis."""
    hour = hour_of(now_ms())
    customers = []
    for number in range(count):
        customer = customer_get_or_create(email=f"batch{number}@example.com")[0]
        key = api_key_create(customer=customer, name="batch")
        redis.hset(pending_key(customer.pk), usage_field(hour, key.api_key.pk, "api:echo"), 2)
        customers.append(customer)
    return customers


def test_a_flush_moves_many_customers_in_a_few_database_round_trips(
    redis, default_tiers, django_assert_max_num_queries
):
    """Batched: a few statements per batch of customers, not several per customer."""
    customers = customers_with_pending_usage_in_redis(redis, 40)
    with django_assert_max_num_queries(20):
        result = flush_usage()
    assert result == FlushResult(customers=40, units=80)
    assert [recorded(customer) for customer in customers] == [2] * 40


def test_a_flush_in_batches_smaller_than_the_customers_moves_them_all(redis, default_tiers, settings):
    settings.USAGE_FLUSH_BATCH_SIZE = 3
    customers = customers_with_pending_usage_in_redis(redis, 8)
    assert flush_usage() == FlushResult(customers=8, units=16)
    assert [recorded(customer) for customer in customers] == [2] * 8
    assert metering_keys(redis) == []


def test_a_batch_applies_the_new_snapshots_beside_ones_already_applied(redis, default_tiers):
    """A crash after one customer's apply: the next flush's batch holds that
    customer's recorded batch and the others' new ones."""
    first, second = customers_with_pending_usage_in_redis(redis, 2)
    crash_after("apply_snapshot", redis, first)
    assert flush_usage().units == 2  # only the second's units are new
    assert (recorded(first), recorded(second), metering_keys(redis)) == (2, 2, [])


def test_a_crash_in_a_later_batch_keeps_the_earlier_batches_and_loses_nothing(
    redis, default_tiers, settings, monkeypatch
):
    settings.USAGE_FLUSH_BATCH_SIZE = 2
    customers = customers_with_pending_usage_in_redis(redis, 5)
    batches = []

    def die_in_the_second_batch(fields_by_customer):
        batches.append(sorted(fields_by_customer))
        if len(batches) == 2:
            raise SystemExit("worker killed")
        _add_usage(fields_by_customer)

    monkeypatch.setattr(flush, "add_usage", die_in_the_second_batch)
    with pytest.raises(SystemExit):
        flush_usage()
    assert [recorded(customer) for customer in customers] == [2, 2, 0, 0, 0]
    monkeypatch.undo()
    assert flush_usage() == FlushResult(customers=3, units=6)
    assert [recorded(customer) for customer in customers] == [2] * 5
    assert metering_keys(redis) == []


def test_counts_of_a_key_deleted_meanwhile_do_not_hold_back_the_rest_of_the_batch(redis, default_tiers):
    """metering.protection refuses deleting a key with pending usage; one gone
    some other way (raw SQL) must not fail its batch's transaction."""
    first, second = customers_with_pending_usage_in_redis(redis, 2)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM apikeys_apikey WHERE customer_id = %s", [first.pk])
    flush_usage()
    assert (recorded(first), recorded(second), metering_keys(redis)) == (0, 2, [])


def test_a_flush_deletes_batch_ids_older_than_their_retention(redis, customer, api_key, settings):
    settings.USAGE_FLUSH_RETENTION_DELETE_ROWS = 2  # several bounded deletes
    old = timezone.now() - flush.FLUSHED_BATCH_RETENTION - timedelta(minutes=1)
    FlushedBatch.objects.bulk_create([FlushedBatch(batch=f"old-{n}") for n in range(5)])
    FlushedBatch.objects.update(flushed_at=old)
    serve(api_key, 3)
    flush_usage()
    assert FlushedBatch.objects.filter(batch__startswith="old-").count() == 0
    assert FlushedBatch.objects.count() == 2  # the batches just applied: the customer's and the cost's


def test_old_batch_ids_are_found_by_an_index(db):
    """The flush deletes expired batch ids each run; at 100,000 active
    customers a minute the log grows by 144 million rows a day, which a
    sequential scan per run could not get through within the statement timeout."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, FlushedBatch._meta.db_table)
    assert any(c["index"] and c["columns"] == ["flushed_at"] for c in constraints.values())
