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

import base64
from datetime import datetime

from .limiter import ClaimedKey, Decision, Limits, Reason, Settlement, SettleRequest, get_limiter

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
    return settle_request(
        SettleRequest(
            decision=decision,
            billed_at_check=billed_at_check,
            billable=billable,
            cost=cost,
            usage_field=field,
            claimed=claimed,
        )
    )


def settle_request(request: SettleRequest) -> Settlement:
    return get_limiter().settle(request)


def settle_arguments(request: SettleRequest) -> dict:
    """A settle that Redis could not take, as JSON for a Celery task
    (metering.tasks.settle_again) to retry. Only what settle.lua reads."""
    limits, claimed = request.decision.limits, request.claimed
    arguments = {
        "customer_id": limits.customer_id,
        "period_start": limits.period_start.isoformat(),
        "period_end": limits.period_end.isoformat(),
        "billed_at_check": request.billed_at_check,
        "billable": request.billable,
        "cost": request.cost,
        "usage_field": request.usage_field,
    }
    if claimed is not None:
        arguments["claimed"] = {
            "record": claimed.record,
            "token": claimed.token,
            "stored": claimed.stored,
            "status": claimed.status,
            "content_type": claimed.content_type,
            "body": base64.b64encode(claimed.body).decode(),
        }
    return arguments


def settle_from_arguments(arguments: dict) -> Settlement:
    """settle_arguments' settle, applied now. The limiter's deadline makes each
    attempt all or nothing, so retrying one that timed out never applies it twice."""
    start, end = (datetime.fromisoformat(arguments[name]) for name in ("period_start", "period_end"))
    # settle.lua reads only the customer's keys: the burst and quota do not matter.
    limits = Limits(
        customer_id=arguments["customer_id"], burst=1, quota=1, period_start=start, period_end=end
    )
    claimed = arguments.get("claimed")
    if claimed is not None:
        claimed = ClaimedKey(**{**claimed, "body": base64.b64decode(claimed["body"])})
    decision = Decision(limits, 0, Reason.ADMITTED, 0, 0, 0)
    return settle_request(
        SettleRequest(
            decision=decision,
            billed_at_check=arguments["billed_at_check"],
            billable=arguments["billable"],
            cost=arguments["cost"],
            usage_field=arguments["usage_field"],
            claimed=claimed,
        )
    )
