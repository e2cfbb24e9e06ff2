"""Billable usage: settling each admitted request, and reading what is pending.

After the view, `settle()` decides whether the request is billable and, in the
same Redis round trip (metering/lua/settle.lua), either counts it in the
customer's pending usage hash or gives its reserved quota back, and adds the
request's cost sample. The flush (metering/flush.py) moves pending usage to
PostgreSQL.

Pending hash fields, all in the customer's `{c<id>}` slot:
  u|<hour epoch>|<key id>|<endpoint>   billable units
  c|<hour epoch>|<endpoint>|<metric>   cost sample totals and CPU histogram

On the embedded default (no REDIS_URL) the same rules apply in process and
usage is written to the database at once, since there is no Redis to flush.
"""

import hashlib
from datetime import UTC, datetime

from .cost import CostSample
from .limiter import Decision, Settlement, SettleRequest, get_limiter, pending_key, redis_key

__all__ = ["pending_key", "settle", "snapshot_key"]

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


def cost_fields(hour: int, endpoint: str, sample: CostSample) -> dict[str, int]:
    prefix = f"c|{hour}|{endpoint}|"
    return {
        prefix + "requests": 1,
        prefix + "cpu_us": round(sample.cpu_ms * 1000),
        prefix + "bytes_out": sample.bytes_out,
        prefix + "third_party_calls": sample.third_party_calls,
        prefix + f"cpu_b{sample.histogram_bucket()}": 1,
    }


def is_billable(method: str, status: int) -> bool:
    return method not in UNBILLED_METHODS and status in BILLABLE_STATUSES


def settle(
    decision: Decision,
    *,
    billable: bool,
    key_id: int,
    endpoint: str,
    cost: int,
    idempotency_key: str | None,
    sample: CostSample | None,
) -> Settlement:
    """Bill the admitted request or give its units back; add its cost sample."""
    hour = hour_of(decision.now_ms)
    customer_id = decision.limits.customer_id
    return get_limiter().settle(
        SettleRequest(
            decision=decision,
            billable=billable,
            cost=cost,
            usage_field=usage_field(hour, key_id, endpoint),
            idempotency_marker=idempotency_marker(customer_id, idempotency_key) if idempotency_key else None,
            cost_fields=cost_fields(hour, endpoint, sample) if sample else {},
        )
    )
