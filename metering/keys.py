"""Where metering keeps things in Redis: every key name, and the fields of the
pending usage hashes.

Keys are `metering:v1:<kind>:{c<customer_id>}[:<part>...]`. The `{c…}` hash
tag puts all of one customer's keys in one cluster slot, so a script touching
several of them runs unchanged on Redis Cluster. Bump KEY_VERSION when the
layout changes.

Pending usage hash fields, in the customer's slot:
  u|<bucket epoch>|<key id>|<endpoint>   billable units
  r|<hour epoch>|429                     requests the limiter refused, counted
                                         by check_and_reserve.lua as it refuses
A bucket starts at the UTC hour, or at the quota period's start when the
period began inside that hour (usage_bucket), so no bucket straddles a period.
The cost hash (COST_KEY, its own slot) holds `c|<hour>|<endpoint>|<metric>`
samples and `r|<hour>|<customer id>|402` counts of suspended customers'
refused requests (metering.cost), which never reach the limiter.
"""

import hashlib
import re
from datetime import UTC, datetime

APP = "metering"
KEY_VERSION = "v1"
CUSTOMER_TAG = re.compile(r"\{c(\d+)\}")


def _key(kind: str, tag: str, *parts) -> str:
    return ":".join([APP, KEY_VERSION, kind, f"{{{tag}}}", *map(str, parts)])


def redis_key(kind: str, customer_id: int | str, *parts) -> str:
    """`metering:v1:<kind>:{c<customer_id>}[:<part>...]`: one hash slot per customer."""
    return _key(kind, f"c{customer_id}", *parts)


# All endpoints' pending cost samples: one hash, tagged apart from every
# customer, so the flush can rename it to its snapshot on Redis Cluster too.
COST_KEY = _key("cost", "cost")
COST_SNAPSHOT_KEY = _key("flushing", "cost")


def burst_key(customer_id: int | str) -> str:
    return redis_key("burst", customer_id)


def quota_key(customer_id: int | str, period_start_s: int) -> str:
    """The period's quota counter; keyed by the period start, so a tier change
    mid-period keeps the usage already counted."""
    return redis_key("quota", customer_id, period_start_s)


def pending_key(customer_id: int | str) -> str:
    return redis_key("usage", customer_id)


def snapshot_key(customer_id: int | str) -> str:
    return redis_key("flushing", customer_id)


def idempotency_record(customer_id: int, idempotency_key: str) -> str:
    """The hash holding an Idempotency-Key's claim, then its stored response
    (metering/lua/idempotency_claim.lua). A kind of its own: "idem" held a plain
    string in the earlier layout."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return redis_key("idempotency", customer_id, digest)


def customer_of(key: str) -> int | None:
    """The customer id in a key's hash tag, or None for a key of no customer."""
    match = CUSTOMER_TAG.search(key)
    return int(match.group(1)) if match else None


def hour_of(now_ms: int) -> int:
    return now_ms // 1000 // 3600 * 3600


def usage_bucket(now_ms: int, period_start_ms: int, period_end_ms: int) -> int:
    """The start (epoch seconds) of the usage bucket a unit served at `now_ms` goes to.

    Its UTC hour, unless the quota period began inside that hour: then the
    period's start, so that each unit belongs to exactly one period (a billing
    period renews at the minute its subscription began). Periods shorter than
    an hour keep hourly buckets: nothing reads their usage back per period,
    and a bucket per minute would multiply the ledger's rows by 60.
    """
    hour = hour_of(now_ms)
    if period_end_ms - period_start_ms < 3_600_000:
        return hour
    return max(hour, period_start_ms // 1000)


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour, UTC)


def usage_field(hour: int, key_id: int, endpoint: str) -> str:
    return f"u|{hour}|{key_id}|{endpoint}"


USAGE_PREFIX = "u|"
REFUSAL_PREFIX = "r|"
TOO_MANY_REQUESTS = 429


def refusal_field(hour: int) -> str:
    """The pending hash's count of 429s refused in the UTC hour starting at `hour`."""
    return f"{REFUSAL_PREFIX}{hour}|{TOO_MANY_REQUESTS}"


# A billed check's witness in the pending hash: "w|<slot>" -> its token, the
# slot naming the thread that sent it (one field per thread serving the
# customer). A check whose reply never came is cancelled by its token
# (metering/lua/cancel_check.lua).
WITNESS_PREFIX = "w|"
