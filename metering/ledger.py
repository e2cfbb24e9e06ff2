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


def _upsert(table: str, columns: list[str], conflict: list[str], add_column: str, rows: list[tuple]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE adding to `add_column` (PostgreSQL and SQLite)."""
    if not rows:
        return
    placeholders = ", ".join(["%s"] * len(columns))
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "
        f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE "
        f"SET {add_column} = {table}.{add_column} + EXCLUDED.{add_column}"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def add_usage_fields(customer_id: int, fields: dict[str, int]) -> None:
    """Add `u|<bucket>|<key id>|<endpoint>` counts to UsageRecord (metering.keys)."""
    totals: dict[tuple, int] = defaultdict(int)
    for name, count in fields.items():
        _, hour, key_id, endpoint = name.split("|", 3)
        totals[(int(key_id), endpoint, int(hour))] += int(count)
    known_keys = set(APIKey.objects.filter(pk__in={k for k, _, _ in totals}).values_list("pk", flat=True))
    rows = [
        (customer_id, key_id, endpoint, hour_start(hour), count)
        for (key_id, endpoint, hour), count in totals.items()
        if key_id in known_keys
    ]
    if len(rows) != len(totals):
        logger.warning("usage flush: dropped counts of deleted keys for customer %s", customer_id)
    _upsert(
        UsageRecord._meta.db_table,
        ["customer_id", "api_key_id", "endpoint", "hour", "count"],
        ["customer_id", "api_key_id", "endpoint", "hour"],
        "count",
        [row for row in rows if row[-1] > 0],
    )
    _subtract_usage([row for row in rows if row[-1] < 0])


def _subtract_usage(rows: list[tuple]) -> None:
    """Apply unbillings whose units an earlier batch already added.

    Not through the upsert: the database checks `count >= 0` on the row to be
    inserted before it merges it, so a negative insert fails even when the
    existing row is large enough.
    """
    table = UsageRecord._meta.db_table
    sql = (
        f"UPDATE {table} SET count = CASE WHEN count + %s < 0 THEN 0 ELSE count + %s END "
        "WHERE customer_id = %s AND api_key_id = %s AND endpoint = %s AND hour = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            sql,
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


def _add_refusals(refusals: dict[tuple, int]) -> None:
    known = set(Customer.objects.filter(pk__in={c for c, _, _ in refusals}).values_list("pk", flat=True))
    _upsert(
        RefusalRecord._meta.db_table,
        ["customer_id", "hour", "status", "count"],
        ["customer_id", "hour", "status"],
        "count",
        [(customer, *rest, count) for (customer, *rest), count in refusals.items() if customer in known],
    )
