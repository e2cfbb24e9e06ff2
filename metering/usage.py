"""Billable usage: which requests count, and settling the ones the check could not decide.

The limiter's check bills an admitted request at once (optimistically: most
succeed) unless it claimed an Idempotency-Key (metering/idempotency.py). After
the response, `settle()` is called only when that guess must change: a failure
is unbilled and its quota units given back, and a request that claimed a key
is billed if it succeeded, its response kept for repeats
(metering/lua/settle.lua). The flush (metering/flush.py)
moves pending usage to PostgreSQL; metering/keys.py has its Redis layout.

On the embedded default (no REDIS_URL) the same rules apply in process and
usage is written to the database at once, since there is no Redis to flush.
"""

from .limiter import ClaimedKey, Decision, Settlement, SettleRequest, get_limiter

BILLABLE_STATUSES = range(200, 300)
# OPTIONS is answered by DRF's metadata, never by the view. HEAD is not here:
# Django runs the GET view for it and only drops the body, so it costs a GET.
UNBILLED_METHODS = frozenset({"OPTIONS"})


def is_billable(method: str, status: int) -> bool:
    return method not in UNBILLED_METHODS and status in BILLABLE_STATUSES


def settle(
    decision: Decision,
    *,
    billed_at_check: bool,
    billable: bool,
    field: str,
    cost: int,
    claimed: ClaimedKey | None = None,
) -> Settlement:
    """Decide the billing the check could not: unbill a failure, or settle a
    request that claimed an Idempotency-Key. Gives unbilled units back."""
    return get_limiter().settle(
        SettleRequest(
            decision=decision,
            billed_at_check=billed_at_check,
            billable=billable,
            cost=cost,
            usage_field=field,
            claimed=claimed,
        )
    )
