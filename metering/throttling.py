"""The DRF throttle that enforces a key's tier: one limiter call per request.

Installed by default (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]), so every
API view is limited without code of its own. A view may set:

- `quota_cost = N`: one call uses N quota units (default 1), for expensive endpoints;
- `billable = False`: limited, but never counted as usage (e.g. the usage API);
- `metered = False`: not limited and not counted at all.

The decision is left on the Django request for metering.middleware, which
settles it (bill or refund) and writes the headers once the response exists.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from rest_framework import status
from rest_framework.throttling import BaseThrottle

from apikeys.context import KeyContext
from saas.errors import AppError

from .limiter import Decision, LimiterUnavailable, Limits, Reason, get_limiter
from .periods import period_bounds

logger = logging.getLogger(__name__)

METERING_ATTRIBUTE = "metering"


@dataclass(frozen=True)
class MeteredRequest:
    decision: Decision
    key_id: int
    cost: int
    billable_view: bool


class RateLimited(AppError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS


class LimiterDown(AppError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "rate_limiter_unavailable"
    detail = "Usage limits cannot be checked right now; please retry shortly."


def _fromtimestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def limits_for(context: KeyContext, now: datetime) -> Limits:
    start, end = period_bounds(
        context.quota_period,
        now,
        _fromtimestamp(context.billing_period_start),
        _fromtimestamp(context.billing_period_end),
    )
    return Limits(
        customer_id=context.customer_id,
        burst=context.burst,
        quota=context.quota,
        period_start=start,
        period_end=end,
        hard_quota=context.hard_quota,
    )


def rate_limited_error(decision: Decision) -> RateLimited:
    limits = decision.limits
    if decision.reason == Reason.BURST:
        code, limit, window = "burst_limit_exceeded", limits.burst, "second"
        detail = f"More than {limits.burst} requests in one second."
    else:
        code, limit, window = "quota_exceeded", limits.quota, "period"
        detail = f"The quota of {limits.quota} requests for this period is used up."
    retry = decision.retry_after_seconds
    return RateLimited(
        f"{detail} Retry in {retry} s.",
        code=code,
        extra={"limit": limit, "window": window, "retry_after": retry},
    )


def check_with_seed(limits: Limits, *, cost: int, now_ms: int) -> Decision:
    """Check, seeding a missing quota counter from the billed usage.

    The counter is missing at the start of each period and after Redis lost
    it; only the second case has usage to restore, but telling them apart
    costs the same query. Once per customer per period, not per request.
    """
    limiter = get_limiter()
    if limits.period_end - limits.period_start < timedelta(hours=1):
        # Usage is stored by the hour: it cannot restore a per-minute counter.
        return limiter.check(limits, cost=cost, now_ms=now_ms, seed=0)
    decision = limiter.check(limits, cost=cost, now_ms=now_ms, seed=None)
    if decision.reason != Reason.NEEDS_SEED:
        return decision
    from .selectors import usage_in_period

    used = usage_in_period(
        customer_id=limits.customer_id, start=limits.period_start, end=limits.period_end
    ).total
    return limiter.check(limits, cost=cost, now_ms=now_ms, seed=used)


class TierThrottle(BaseThrottle):
    def allow_request(self, request, view):
        context = request.auth
        if not isinstance(context, KeyContext) or not getattr(view, "metered", True):
            return True
        now = time.time()
        limits = limits_for(context, datetime.fromtimestamp(now, UTC))
        cost = getattr(view, "quota_cost", 1)
        try:
            decision = check_with_seed(limits, cost=cost, now_ms=int(now * 1000))
        except LimiterUnavailable:
            if settings.RATE_LIMIT_FAIL_OPEN:
                logger.warning("limiter unavailable: admitting (fail-open)", exc_info=True)
                return True
            logger.error("limiter unavailable: refusing (fail-closed)", exc_info=True)
            retry = str(settings.RATE_LIMIT_UNAVAILABLE_RETRY_AFTER)
            raise LimiterDown(headers={"Retry-After": retry}) from None
        metered = MeteredRequest(decision, context.key_id, cost, getattr(view, "billable", True))
        setattr(request._request, METERING_ATTRIBUTE, metered)
        if not decision.admitted:
            raise rate_limited_error(decision)
        return True
