"""Billable usage: which requests count, and the Redis layout of what is pending.

The limiter's check bills an admitted request at once (optimistically: most
succeed) unless it carries an Idempotency-Key. After the response, `settle()`
is called only when that guess must change: a failure is unbilled and its
quota units given back, and an Idempotency-Key request is billed unless it is
a retry of a success (metering/lua/settle.lua). The flush (metering/flush.py)
moves pending usage to PostgreSQL.

Pending usage hash fields, in the customer's `{c<id>}` slot:
  u|<hour epoch>|<key id>|<endpoint>   billable units
Cost samples are aggregated per process (metering.cost.CostAggregator) in
`metering:v1:cost:{cost}` with fields c|<hour epoch>|<endpoint>|<metric>.

On the embedded default (no REDIS_URL) the same rules apply in process and
usage is written to the database at once, since there is no Redis to flush.
"""

import hashlib
from datetime import UTC, datetime

from .limiter import Decision, Settlement, SettleRequest, get_limiter, redis_key

BILLABLE_STATUSES = range(200, 300)
UNBILLED_METHODS = frozenset({"HEAD", "OPTIONS"})


def snapshot_key(customer_id: int | str) -> str:
    return redis_key("flushing", customer_id)


def idempotency_marker(customer_id: int, idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return redis_key("idem", customer_id, digest)


def hour_of(now_ms: int) -> int:
    return now_ms // 1000 // 3600 * 3600


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour, UTC)


def usage_field(hour: int, key_id: int, endpoint: str) -> str:
    return f"u|{hour}|{key_id}|{endpoint}"


def is_billable(method: str, status: int) -> bool:
    return method not in UNBILLED_METHODS and status in BILLABLE_STATUSES


def settle(
    decision: Decision,
    *,
    billed_at_check: bool,
    billable: bool,
    field: str,
    cost: int,
    idempotency_key: str | None,
) -> Settlement:
    """Decide the billing the check could not: unbill a failure, or settle a
    request that carried an Idempotency-Key. Gives unbilled units back."""
    customer_id = decision.limits.customer_id
    return get_limiter().settle(
        SettleRequest(
            decision=decision,
            billed_at_check=billed_at_check,
            billable=billable,
            cost=cost,
            usage_field=field,
            idempotency_marker=idempotency_marker(customer_id, idempotency_key) if idempotency_key else None,
        )
    )
