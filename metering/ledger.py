"""The usage ledger's writes to PostgreSQL: billable units (UsageRecord),
refusals (RefusalRecord) and cost samples (EndpointCost), each added with one
upsert per batch of counts.

Two callers: the flush (metering/flush.py), moving what Redis collected, and
the embedded default (no REDIS_URL), whose limiter and cost aggregator write
here directly since there is no Redis to flush from.
"""

import logging
from collections import defaultdict

from django.db import connection

from apikeys.models import APIKey
from plans.models import Customer

from .keys import hour_start
from .models import EndpointCost, RefusalRecord, UsageRecord

logger = logging.getLogger(__name__)


# The class of PostgreSQL advisory locks on a customer's usage ledger (the
# other key is the customer id): any number chosen apart from other locks.
USAGE_LOCK_CLASS = 1313


def lock_usage(customer_id: int, *, shared: bool) -> None:
    """Lock the customer's usage ledger to the end of the transaction.

    The flush's apply takes it exclusive, readers of PostgreSQL plus Redis
    shared: no flush then commits between a reader's two reads, which would
    count its units twice or not at all. A no-op where there are no advisory
    locks (the embedded default's SQLite has no Redis to read either).
    """
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [USAGE_LOCK_CLASS, customer_id])


def lock_usages(customer_ids: list[int], *, shared: bool) -> None:
    """`lock_usage` for many customers in one statement, in ascending order so
    that two transactions locking overlapping sets cannot deadlock. Each lock
    takes a slot of PostgreSQL's lock table (max_locks_per_transaction times
    max_connections): callers lock a bounded batch (USAGE_FLUSH_BATCH_SIZE)."""
    if connection.vendor != "postgresql" or not customer_ids:
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        # int4 ids: the same (int, int) lock as lock_usage's. unnest keeps the array's order.
        cursor.execute(
            f"SELECT count({function}(%s, customer_id)) FROM unnest(%s::int[]) AS customer_id",
            [USAGE_LOCK_CLASS, sorted(customer_ids)],
        )


def _unnest(types: list[str]) -> str:
    """`unnest(%s::t1[], %s::t2[], ...)`: one row per index of the column arrays."""
    return "unnest({})".format(", ".join(f"%s::{kind}[]" for kind in types))


def _upsert(
    table: str, columns: list[str], conflict: list[str], add_column: str, rows: list[tuple], *, types=None
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE adding to `add_column`. On PostgreSQL
    with `types` (the columns' types), one statement for all rows, their
    columns sent as arrays; rows must be unique on `conflict` (an upsert
    cannot touch one row twice). Otherwise one row at a time (SQLite)."""
    if not rows:
        return
    on_conflict = (
        f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE "
        f"SET {add_column} = {table}.{add_column} + EXCLUDED.{add_column}"
    )
    with connection.cursor() as cursor:
        if types and connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM {_unnest(types)} {on_conflict}",
                [list(column) for column in zip(*rows, strict=True)],
            )
            return
        placeholders = ", ".join(["%s"] * len(columns))
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) {on_conflict}", rows
        )


def add_usage_fields(customer_id: int, fields: dict[str, int]) -> None:
    """Add `u|<bucket>|<key id>|<endpoint>` counts to UsageRecord (metering.keys)."""
    add_usage({customer_id: fields})


def add_usage(fields_by_customer: dict[int, dict[str, int]]) -> None:
    """`add_usage_fields` for many customers: a few statements for all of them.

    Counts of a customer or key deleted meanwhile are dropped (logged): their
    rows would fail the foreign keys and hold back everyone else's.
    """
    totals: dict[tuple, int] = defaultdict(int)
    for customer_id, fields in fields_by_customer.items():
        for name, count in fields.items():
            _, hour, key_id, endpoint = name.split("|", 3)
            totals[(customer_id, int(key_id), endpoint, int(hour))] += int(count)
    if not totals:
        return
    known_customers = set(
        Customer.objects.filter(pk__in={c for c, _, _, _ in totals}).values_list("pk", flat=True)
    )
    known_keys = set(APIKey.objects.filter(pk__in={k for _, k, _, _ in totals}).values_list("pk", flat=True))
    rows = [
        (customer_id, key_id, endpoint, hour_start(hour), count)
        for (customer_id, key_id, endpoint, hour), count in totals.items()
        if customer_id in known_customers and key_id in known_keys
    ]
    if len(rows) != len(totals):
        dropped = sorted({c for c, k, _, _ in totals if c not in known_customers or k not in known_keys})
        logger.warning("usage flush: dropped counts of deleted customers or keys for customers %s", dropped)
    columns = ["customer_id", "api_key_id", "endpoint", "hour", "count"]
    _upsert(
        UsageRecord._meta.db_table,
        columns,
        ["customer_id", "api_key_id", "endpoint", "hour"],
        "count",
        [row for row in rows if row[-1] > 0],
        types=USAGE_TYPES,
    )
    _subtract_usage([row for row in rows if row[-1] < 0])


# PostgreSQL array types of UsageRecord's columns, for the set-based statements.
USAGE_TYPES = ["bigint", "bigint", "text", "timestamptz", "bigint"]


def _subtract_usage(rows: list[tuple]) -> None:
    """Apply unbillings whose units an earlier batch already added.

    Not through the upsert: the database checks `count >= 0` on the row to be
    inserted before it merges it, so a negative insert fails even when the
    existing row is large enough.
    """
    if not rows:
        return
    table = UsageRecord._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS t SET count = GREATEST(t.count + d.count, 0) "
                f"FROM {_unnest(USAGE_TYPES)} AS d(customer_id, api_key_id, endpoint, hour, count) "
                "WHERE t.customer_id = d.customer_id AND t.api_key_id = d.api_key_id "
                "AND t.endpoint = d.endpoint AND t.hour = d.hour",
                [list(column) for column in zip(*rows, strict=True)],
            )
            return
        cursor.executemany(
            f"UPDATE {table} SET count = CASE WHEN count + %s < 0 THEN 0 ELSE count + %s END "
            "WHERE customer_id = %s AND api_key_id = %s AND endpoint = %s AND hour = %s",
            [
                (count, count, customer_id, key_id, endpoint, hour)
                for customer_id, key_id, endpoint, hour, count in rows
            ],
        )


def add_cost_fields(fields: dict[str, int]) -> None:
    """Add `c|<hour>|<endpoint>|<metric>` totals to EndpointCost and
    `r|<hour>|<customer id>|<status>` refusal counts to RefusalRecord."""
    rows, refusals = [], {}
    for name, value in fields.items():
        kind, hour, owner, metric = name.split("|")
        if kind == "r":
            refusals[(int(owner), hour_start(int(hour)), int(metric))] = int(value)
        else:
            rows.append((owner, hour_start(int(hour)), metric, int(value)))
    _add_refusals(refusals)
    _upsert(
        EndpointCost._meta.db_table,
        ["endpoint", "hour", "metric", "value"],
        ["endpoint", "hour", "metric"],
        "value",
        rows,
    )


def add_refusal_fields(fields_by_customer: dict[int, dict[str, int]]) -> None:
    """Add the `r|<hour>|<status>` counts of customers' pending hashes
    (counted by check_and_reserve.lua, or by the embedded limiter) to RefusalRecord."""
    refusals: dict[tuple, int] = defaultdict(int)
    for customer_id, fields in fields_by_customer.items():
        for name, count in fields.items():
            _, hour, status = name.split("|")
            refusals[(customer_id, hour_start(int(hour)), int(status))] += int(count)
    if refusals:
        _add_refusals(refusals)


def _add_refusals(refusals: dict[tuple, int]) -> None:
    known = set(Customer.objects.filter(pk__in={c for c, _, _ in refusals}).values_list("pk", flat=True))
    _upsert(
        RefusalRecord._meta.db_table,
        ["customer_id", "hour", "status", "count"],
        ["customer_id", "hour", "status"],
        "count",
        [(customer, *rest, count) for (customer, *rest), count in refusals.items() if customer in known],
    )
