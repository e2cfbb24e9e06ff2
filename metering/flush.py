"""Moving pending usage from Redis to PostgreSQL, crash-safe and idempotent.

For each customer with pending usage:

1. `take_snapshot`: atomically rename the pending hash to the customer's
   snapshot hash and stamp it with a new batch id (metering/lua/snapshot.lua).
   New requests start a fresh pending hash meanwhile. A snapshot left by an
   interrupted flush is returned instead, so it is finished first.
2. `apply_snapshot`: in one database transaction, record the batch id in
   FlushedBatch (unique) and add the snapshot's counts to UsageRecord and
   EndpointCost. A batch already recorded is not added again.
3. `discard_snapshot`: delete the snapshot.

A worker killed after 1 leaves the snapshot for the next run; killed during 2,
the transaction rolls back and the next run applies it; killed after 2, the
next run finds the batch recorded and only discards. Nothing is lost, nothing
counted twice.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_redis import get_redis_connection
from redis.exceptions import WatchError

from plans.models import Customer

from .cost import cost_aggregator
from .keys import COST_KEY, COST_SNAPSHOT_KEY, WITNESS_PREFIX, customer_of, pending_key, snapshot_key
from .ledger import add_cost_fields, add_usage_fields, lock_usage
from .models import FlushedBatch

SNAPSHOT = (Path(__file__).parent / "lua" / "snapshot.lua").read_text()
# Snapshots expire with the pending TTL (7 days); a batch id older than that
# can never come back, so its log row can go.
FLUSHED_BATCH_RETENTION = timedelta(days=30)


# What a flush moves: a customer's pending usage (owner: the customer id) or
# the cost samples of all endpoints (owner: COST).
COST = "cost"


def _keys(owner: int | str) -> tuple[str, str]:
    """(pending, snapshot) keys of an owner."""
    if owner == COST:
        return COST_KEY, COST_SNAPSHOT_KEY
    return pending_key(owner), snapshot_key(owner)


def take_snapshot(client, owner: int | str) -> str | None:
    """Step 1: the batch id of the owner's snapshot, or None with nothing pending."""
    script = client.register_script(SNAPSHOT)
    batch = script(keys=list(_keys(owner)), args=[uuid.uuid4().hex])
    return batch.decode() if isinstance(batch, bytes) else batch


def read_snapshot(client, owner: int | str) -> dict[str, int]:
    raw = client.hgetall(_keys(owner)[1])
    # Not the batch id, nor the checks' witnesses (metering.keys.WITNESS_PREFIX).
    return {
        name.decode(): int(value)
        for name, value in raw.items()
        if name != b"batch" and not name.startswith(WITNESS_PREFIX.encode())
    }


def apply_snapshot(owner: int | str, batch: str, fields: dict[str, int]) -> bool:
    """Step 2: add the snapshot to PostgreSQL once. False if it already was."""
    with transaction.atomic():
        if owner != COST:
            lock_usage(owner, shared=False)  # not between a reader's two reads
        # Only the batch's own duplicate means "already applied". Any other
        # database error (a key deleted meanwhile fails its foreign key at
        # commit) must propagate, so that the snapshot is kept for a retry
        # rather than discarded as if it had been applied.
        try:
            with transaction.atomic():
                FlushedBatch.objects.create(batch=batch)
        except IntegrityError:
            return False
        if owner == COST:
            add_cost_fields(fields)
        elif Customer.objects.filter(pk=owner).exists():
            add_usage_fields(owner, fields)
    return True


def discard_snapshot(client, owner: int | str, batch: str) -> None:
    """Step 3: delete the snapshot, only if it is still the batch just applied.

    The compare and the delete are one step (WATCH/MULTI): between them a
    concurrent flush may finish this batch and snapshot newer usage under the
    same key, and deleting that would lose it. The pipeline is asked to be a
    transaction: on Redis Cluster it is not one by default, and WATCH (on the
    key's own slot) needs one.
    """
    key = _keys(owner)[1]
    with client.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(key)
            current = pipe.hget(key, "batch")
            if current is None or current.decode() != batch:
                return
            pipe.multi()
            pipe.delete(key)
            pipe.execute()
        except WatchError:
            pass  # the key changed: a newer snapshot, left for its own flush


def flush_owner(client, owner: int | str) -> int:
    """Move one owner's pending counts; returns the total moved."""
    moved = 0
    # Twice at most: first a snapshot left by an interrupted run, then new counts.
    for _ in range(2):
        batch = take_snapshot(client, owner)
        if batch is None:
            break
        fields = read_snapshot(client, owner)
        if apply_snapshot(owner, batch, fields):
            moved += sum(fields.values())
        discard_snapshot(client, owner, batch)
    return moved


def flush_customer(customer_id: int) -> int:
    """Move one customer's pending usage now; the units moved. For a change
    that prices usage by the tier in force (a plan change): what was served
    before it reaches the ledger first. Call outside a transaction, as the
    beat's flush runs: the snapshot is discarded once its batch is stored."""
    if not settings.REDIS_URL:
        return 0  # the embedded default writes usage directly
    return flush_owner(get_redis_connection("default"), customer_id)


def customers_with_pending_usage(client) -> set[int]:
    customers = set()
    for pattern in (pending_key("*"), snapshot_key("*")):
        # Braces are literal in a SCAN pattern: this matches every customer's key.
        for key in client.scan_iter(match=pattern, count=1000):
            customer_id = customer_of(key.decode())
            if customer_id is not None:
                customers.add(customer_id)
    return customers


@dataclass(frozen=True)
class FlushResult:
    customers: int
    units: int


def flush_usage() -> FlushResult:
    """Move all pending usage to PostgreSQL (the Celery beat task and flush_usage command)."""
    cost_aggregator.flush()  # this process's samples, so that a manual flush is complete
    if not settings.REDIS_URL:
        return FlushResult(0, 0)  # the embedded default writes usage directly
    client = get_redis_connection("default")
    customers = customers_with_pending_usage(client)
    units = sum(flush_owner(client, customer_id) for customer_id in sorted(customers))
    flush_owner(client, COST)
    FlushedBatch.objects.filter(flushed_at__lt=timezone.now() - FLUSHED_BATCH_RETENTION).delete()
    return FlushResult(len(customers), units)
