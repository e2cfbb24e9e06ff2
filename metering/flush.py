"""Moving pending usage from Redis to PostgreSQL, crash-safe and idempotent.

For each customer with pending usage:

1. `take_snapshots`: atomically rename the pending hash to the customer's
   snapshot hash and stamp it with a new batch id (metering/lua/snapshot.lua).
   New requests start a fresh pending hash meanwhile. A snapshot left by an
   interrupted flush is returned instead, so it is finished first.
2. `apply_snapshots`: in one database transaction, record the batch id in
   FlushedBatch (unique) and add the snapshot's counts to UsageRecord and
   EndpointCost. A batch already recorded is not added again.
3. `discard_snapshots`: delete the snapshot (metering/lua/discard.lua).

A worker killed after 1 leaves the snapshot for the next run; killed during 2,
the transaction rolls back and the next run applies it; killed after 2, the
next run finds the batch recorded and only discards. Nothing is lost, nothing
counted twice.

Batched: customers go through the steps USAGE_FLUSH_BATCH_SIZE at a time, each
step one pipelined round trip to Redis, step 2 one transaction of set-based
statements for the whole batch. Each customer's snapshot still carries its own
batch id, so a batch recorded for some customers and not others (a crash
between two flushes' batches) is finished customer by customer.

One flush at a time (`flush_usage` holds the flush lock in Redis); a flush of
one customer (`flush_customer`, on a plan change) may run beside it: the
apply's exclusive lock on the customer's ledger and the batch ids keep the
two from adding a snapshot twice.
"""

import contextlib
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_redis import get_redis_connection
from redis.exceptions import LockError

from core.redis_cluster import is_cluster

from .cost import cost_aggregator
from .keys import (
    COST_KEY,
    COST_SNAPSHOT_KEY,
    REFUSAL_PREFIX,
    WITNESS_PREFIX,
    customer_of,
    pending_key,
    snapshot_key,
)
from .ledger import add_cost_fields, add_refusal_fields, add_usage, lock_usages
from .limiter.contract import PENDING_TTL_MS
from .models import FlushedBatch

logger = logging.getLogger(__name__)

LUA = Path(__file__).parent / "lua"
SNAPSHOT = (LUA / "snapshot.lua").read_text()
DISCARD = (LUA / "discard.lua").read_text()
# Snapshots expire with the pending TTL (PENDING_TTL_MS, 7 days); a batch id
# older than that can never come back, so its log row can go after a day's
# margin. At 100,000 customers active every minute that is still about 1.2
# billion rows; longer would only grow the table.
FLUSHED_BATCH_RETENTION = timedelta(milliseconds=PENDING_TTL_MS) + timedelta(days=1)
# Held by the running flush, renewed after each batch: a flush killed midway
# frees it after USAGE_FLUSH_LOCK_SECONDS.
FLUSH_LOCK_KEY = "metering:v1:lock:{flush}"


# What a flush moves: a customer's pending usage (owner: the customer id) or
# the cost samples of all endpoints (owner: COST).
COST = "cost"


def _keys(owner: int | str) -> tuple[str, str]:
    """(pending, snapshot) keys of an owner."""
    if owner == COST:
        return COST_KEY, COST_SNAPSHOT_KEY
    return pending_key(owner), snapshot_key(owner)


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Snapshot:
    batch: str
    left_over: bool  # left by an interrupted flush: pending usage may wait behind it


def take_snapshots(client, owners: list) -> dict:
    """Step 1 for many owners in one round trip: {owner: Snapshot} of those with something to move."""
    proposed = {owner: uuid.uuid4().hex for owner in owners}
    calls = [(list(_keys(owner)), [proposed[owner]]) for owner in owners]
    batches = _run_pipelined(client, client.register_script(SNAPSHOT), calls)
    return {
        owner: Snapshot(batch, left_over=batch != proposed[owner])
        for owner, batch in zip(owners, map(_text, batches), strict=True)
        if batch is not None
    }


def _usage_fields(raw: dict) -> dict[str, int]:
    # Not the batch id, nor the checks' witnesses (metering.keys.WITNESS_PREFIX).
    return {
        name.decode(): int(value)
        for name, value in raw.items()
        if name != b"batch" and not name.startswith(WITNESS_PREFIX.encode())
    }


def _refusals(fields: dict[str, int]) -> dict[str, int]:
    """A customer's `r|<hour>|429` counts (metering.keys)."""
    return {name: count for name, count in fields.items() if name.startswith(REFUSAL_PREFIX)}


def _without_refusals(fields: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in fields.items() if not name.startswith(REFUSAL_PREFIX)}


def read_snapshots(client, owners: list) -> dict:
    """{owner: its snapshot's counts}, in one round trip."""
    with client.pipeline(transaction=False) as pipe:
        for owner in owners:
            pipe.hgetall(_keys(owner)[1])
        hashes = pipe.execute()
    return {owner: _usage_fields(raw) for owner, raw in zip(owners, hashes, strict=True)}


def _record_batches(batches: list[str]) -> set[str]:
    """Log the batch ids in FlushedBatch; those not logged before."""
    if not batches:
        return set()
    table = FlushedBatch._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (batch, flushed_at) SELECT batch, %s FROM unnest(%s::text[]) AS batch "
                "ON CONFLICT (batch) DO NOTHING RETURNING batch",
                [timezone.now(), batches],
            )
            return {row[0] for row in cursor.fetchall()}
    # The embedded default's SQLite: one at a time (it has no Redis to flush from; the tests' only).
    known = set(FlushedBatch.objects.filter(batch__in=batches).values_list("batch", flat=True))
    FlushedBatch.objects.bulk_create([FlushedBatch(batch=batch) for batch in batches if batch not in known])
    return set(batches) - known


def apply_snapshots(snapshots: dict) -> set:
    """Step 2 for many owners in one transaction: {owner: (batch, counts)}.
    The owners whose counts were added; the others' batches already were.

    Only a batch's own duplicate means "already applied": any other database
    error (a key deleted meanwhile fails its foreign key at commit) rolls the
    whole transaction back and propagates, so that the snapshots are kept for
    a retry rather than discarded as if they had been applied.
    """
    with transaction.atomic():
        customers = sorted(owner for owner in snapshots if owner != COST)
        lock_usages(customers, shared=False)  # not between a reader's two reads
        new = _record_batches([batch for batch, _ in snapshots.values()])
        applied = {owner for owner, (batch, _) in snapshots.items() if batch in new}
        if COST in applied:
            add_cost_fields(snapshots[COST][1])
        counts = {owner: snapshots[owner][1] for owner in customers if owner in applied}
        add_usage({owner: _without_refusals(fields) for owner, fields in counts.items()})
        add_refusal_fields({owner: _refusals(fields) for owner, fields in counts.items()})
    return applied


def discard_snapshots(client, batches: dict) -> None:
    """Step 3 for many owners in one round trip: {owner: the batch just applied}.
    Each snapshot is deleted only if it still carries that batch (discard.lua)."""
    calls = [([_keys(owner)[1]], [batch]) for owner, batch in batches.items()]
    _run_pipelined(client, client.register_script(DISCARD), calls)


def _run_pipelined(client, script, calls: list) -> list:
    """`script` for each (keys, args) of `calls`, pipelined; the replies in order.

    redis-py refuses scripts in a Redis Cluster pipeline, so on a cluster each
    node's calls go through that node's own client, one pipeline per node: a
    call's keys share one customer's slot, hence one node. A slot moved
    meanwhile fails the batch (MOVED), which the next flush finishes.
    """
    if not is_cluster(client):
        return _pipeline(client, script, calls)
    by_node = defaultdict(list)
    for index, (keys, _) in enumerate(calls):
        by_node[client.get_node_from_key(keys[0]).name].append(index)
    replies = [None] * len(calls)
    for name, indexes in by_node.items():
        node = client.get_node(node_name=name).redis_connection
        for index, reply in zip(indexes, _pipeline(node, script, [calls[i] for i in indexes]), strict=True):
            replies[index] = reply
    return replies


def _pipeline(client, script, calls: list) -> list:
    with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            script(keys=keys, args=args, client=pipe)
        return pipe.execute()


# One owner's steps, as the crash tests and the admin's inspection use them.
def take_snapshot(client, owner: int | str) -> str | None:
    """Step 1: the batch id of the owner's snapshot, or None with nothing pending."""
    snapshot = take_snapshots(client, [owner]).get(owner)
    return snapshot.batch if snapshot else None


def read_snapshot(client, owner: int | str) -> dict[str, int]:
    return read_snapshots(client, [owner])[owner]


def apply_snapshot(owner: int | str, batch: str, fields: dict[str, int]) -> bool:
    """Step 2: add the snapshot to PostgreSQL once. False if it already was."""
    return owner in apply_snapshots({owner: (batch, fields)})


def discard_snapshot(client, owner: int | str, batch: str) -> None:
    discard_snapshots(client, {owner: batch})


def flush_owners(client, owners: list) -> int:
    """Move the owners' pending counts, as one batch; returns the total moved."""
    moved = 0
    # Twice at most: first the snapshots left by an interrupted run, then new counts behind them.
    for _ in range(2):
        snapshots = take_snapshots(client, owners)
        if not snapshots:
            break
        counts = read_snapshots(client, list(snapshots))
        applied = apply_snapshots(
            {owner: (snapshot.batch, counts[owner]) for owner, snapshot in snapshots.items()}
        )
        moved += sum(sum(_without_refusals(counts[owner]).values()) for owner in applied)
        discard_snapshots(client, {owner: snapshot.batch for owner, snapshot in snapshots.items()})
        owners = [owner for owner, snapshot in snapshots.items() if snapshot.left_over]
        if not owners:
            break
    return moved


def flush_customer(customer_id: int) -> int:
    """Move one customer's pending usage now; the units moved. For a change
    that prices usage by the tier in force (a plan change): what was served
    before it reaches the ledger first. Call outside a transaction, as the
    beat's flush runs: the snapshot is discarded once its batch is stored."""
    if not settings.REDIS_URL:
        return 0  # the embedded default writes usage directly
    return flush_owners(get_redis_connection("default"), [customer_id])


def customers_with_pending_usage(client) -> set[int]:
    customers = set()
    for pattern in (pending_key("*"), snapshot_key("*")):
        # Braces are literal in a SCAN pattern: this matches every customer's key.
        for key in client.scan_iter(match=pattern, count=5000):
            customer_id = customer_of(key.decode())
            if customer_id is not None:
                customers.add(customer_id)
    return customers


def _delete_expired_batches() -> None:
    """Delete the batch ids past their retention, a bounded number of rows a
    statement: each statement must end within the statement timeout however
    many expired meanwhile (one row per active customer a flush)."""
    expired = FlushedBatch.objects.filter(flushed_at__lt=timezone.now() - FLUSHED_BATCH_RETENTION)
    while True:
        ids = list(expired.values_list("pk", flat=True)[: settings.USAGE_FLUSH_RETENTION_DELETE_ROWS])
        if not ids:
            return
        FlushedBatch.objects.filter(pk__in=ids).delete()


@dataclass(frozen=True)
class FlushResult:
    customers: int
    units: int
    skipped: bool = False  # another flush held the lock: this one moved nothing


def flush_usage() -> FlushResult:
    """Move all pending usage to PostgreSQL (the Celery beat task and flush_usage command).

    Skipped while another flush runs (the flush lock): two would only race
    for the same customers.
    """
    cost_aggregator.flush()  # this process's samples, so that a manual flush is complete
    if not settings.REDIS_URL:
        return FlushResult(0, 0)  # the embedded default writes usage directly
    client = get_redis_connection("default")
    lock = client.lock(FLUSH_LOCK_KEY, timeout=settings.USAGE_FLUSH_LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        logger.info("usage flush: another flush is running; this one skipped")
        return FlushResult(0, 0, skipped=True)
    try:
        customers = sorted(customers_with_pending_usage(client))
        size = settings.USAGE_FLUSH_BATCH_SIZE
        units = 0
        for start in range(0, len(customers), size):
            units += flush_owners(client, customers[start : start + size])
            lock.reacquire()  # LockNotOwnedError if it expired meanwhile: stop, the next run goes on
        flush_owners(client, [COST])
        _delete_expired_batches()
    finally:
        # Expired and perhaps taken by the next flush: its lock, not ours.
        with contextlib.suppress(LockError):
            lock.release()
    return FlushResult(len(customers), units)
