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
from time import monotonic

from django.conf import settings
from rest_framework import status
from rest_framework.throttling import BaseThrottle

from apikeys.context import KeyContext
from core.errors import AppError
from plans.periods import period_bounds

from . import idempotency
from .keys import usage_bucket, usage_field
from .limiter import (
    Claim,
    ClaimedKey,
    ClaimOutcome,
    Decision,
    LimiterUnavailable,
    Limits,
    Reason,
    get_limiter,
)
from .selectors import tier_above, usage_in_period
from .usage import UNBILLED_METHODS

logger = logging.getLogger(__name__)

METERING_ATTRIBUTE = "metering"


@dataclass(frozen=True)
class MeteredRequest:
    """What the middleware needs to settle a request after its response."""

    decision: Decision
    cost: int  # 0 for requests that can never be billed
    endpoint: str
    usage_field: str
    billed_at_check: bool
    claimed: ClaimedKey | None = None  # the Idempotency-Key this request claimed
    replay: Claim | None = None  # a repeat: the stored response to answer with


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
        overage_ceiling=context.overage_ceiling,
    )


@dataclass(frozen=True)
class Upgrade:
    """The tier a refusal for quota offers, and where to take it."""

    tier: str
    quota: int
    period: str  # "per month"
    url: str  # absolute: the dashboard's plan section


UPGRADE_CACHE_SECONDS = 60
_upgrades: dict[tuple[str, int], tuple[tuple[str, int, str] | None, float]] = {}


def upgrade_for(context: KeyContext, url: str) -> Upgrade | None:
    """The next tier up from the key's, looked up at most once a minute per
    tier and process: a client that keeps calling past its quota must not
    cost a query per 429. A tier renamed or repriced shows within the minute."""
    key = (context.tier_slug, context.quota)
    cached = _upgrades.get(key)
    if cached is None or monotonic() - cached[1] >= UPGRADE_CACHE_SECONDS:
        tier = tier_above(tier_slug=context.tier_slug, quota=context.quota)
        found = (tier.name, tier.quota, tier.get_quota_period_display()) if tier else None
        if len(_upgrades) > 10_000:
            _upgrades.clear()
        cached = _upgrades[key] = (found, monotonic())
    if cached[0] is None:
        return None
    return Upgrade(*cached[0], url=url)


def rate_limited_error(decision: Decision, upgrade: Upgrade | None = None) -> RateLimited:
    """The 429: what refused, when it resets (seconds and an ISO 8601 UTC
    date-time), and for a quota refusal the upgrade when a higher tier exists."""
    limits, reset = decision.limits, decision.reset_at
    reset = reset.astimezone(UTC)
    reset_at = reset.strftime("%Y-%m-%dT%H:%M:%SZ")
    when = f"{reset.day} {reset:%B %Y at %H:%M} UTC"
    if decision.reason == Reason.BURST:
        code, limit, window = "burst_limit_exceeded", limits.burst, "second"
        detail = f"More than {limits.burst} requests in one second. Retry after {reset_at}."
        upgrade = None  # a second's wait is the answer, not a bigger plan
    elif not limits.hard_quota:
        code, limit, window = "spending_cap_reached", limits.ceiling, "period"
        detail = (
            f"The overage spending cap is reached ({limits.ceiling:,} requests this period, "
            f"quota included); it resets on {when}. Raise the cap on the dashboard."
        )
    else:
        code, limit, window = "quota_exceeded", limits.quota, "period"
        detail = f"The quota of {limits.quota:,} requests for this period is used up; it resets on {when}."
    extra = {
        "limit": limit,
        "window": window,
        "retry_after": decision.retry_after_seconds,
        "reset_at": reset_at,
    }
    if upgrade is not None:
        detail += f" Upgrade to {upgrade.tier} for {upgrade.quota:,} requests {upgrade.period}: {upgrade.url}"
        extra.update(upgrade_tier=upgrade.tier, upgrade_url=upgrade.url)
    return RateLimited(detail, code=code, extra=extra)


def check_with_seed(limits: Limits, *, cost: int, now_ms: int, bill_field: str | None = None) -> Decision:
    """Check, seeding a missing quota counter from the billed usage.

    The counter is missing at the start of each period and after Redis lost
    it; only the second case has usage to restore, but telling them apart
    costs the same query. Once per customer per period, not per request.
    """
    limiter = get_limiter()
    if limits.period_end - limits.period_start < timedelta(hours=1):
        # Usage is stored by the hour: it cannot restore a per-minute counter.
        return limiter.check(limits, cost=cost, now_ms=now_ms, seed=0, bill_field=bill_field)
    decision = limiter.check(limits, cost=cost, now_ms=now_ms, seed=None, bill_field=bill_field)
    if decision.reason != Reason.NEEDS_SEED:
        return decision
    used = usage_in_period(
        customer_id=limits.customer_id, start=limits.period_start, end=limits.period_end
    ).total
    return limiter.check(limits, cost=cost, now_ms=now_ms, seed=used, bill_field=bill_field)


_limits_cache: dict[int, tuple[KeyContext, Limits]] = {}


def cached_limits_for(context: KeyContext, now_ms: int) -> Limits:
    """limits_for, computed once per context and period rather than per request."""
    cached = _limits_cache.get(context.key_id)
    if cached is not None and cached[0] is context:
        limits = cached[1]
        if limits.period_start_ms <= now_ms < limits.period_end_ms:
            return limits
    limits = limits_for(context, datetime.fromtimestamp(now_ms / 1000, UTC))
    if len(_limits_cache) > 10_000:
        _limits_cache.clear()
    _limits_cache[context.key_id] = (context, limits)
    return limits


class TierThrottle(BaseThrottle):
    def allow_request(self, request, view):
        context = request.auth
        if not isinstance(context, KeyContext) or not getattr(view, "metered", True):
            return True
        try:
            metered = _meter(request, view, context, int(time.time() * 1000))
        except LimiterUnavailable as error:
            # Per request at debug only: the outage itself is logged once, as
            # it starts and ends (core.breaker).
            if settings.RATE_LIMIT_FAIL_OPEN:
                logger.debug("limiter unavailable: admitting (fail-open): %s", error)
                return True
            logger.debug("limiter unavailable: refusing (fail-closed): %s", error)
            retry = str(settings.RATE_LIMIT_UNAVAILABLE_RETRY_AFTER)
            raise LimiterDown(headers={"Retry-After": retry}) from None
        setattr(request._request, METERING_ATTRIBUTE, metered)
        if not metered.decision.admitted:
            if metered.claimed is not None:
                idempotency.release(metered.decision, metered.claimed, metered.usage_field)
            raise rate_limited_error(metered.decision, _upgrade(request, context, metered.decision))
        if metered.replay is not None:
            raise idempotency.Replayed()  # the view must not run; the middleware answers
        return True


def _upgrade(request, context: KeyContext, decision: Decision) -> Upgrade | None:
    if decision.reason != Reason.QUOTA:
        return None
    return upgrade_for(context, request.build_absolute_uri(settings.BILLING_PAGE_PATH) + "#billing")


def _meter(request, view, context: KeyContext, now_ms: int) -> MeteredRequest:
    """The check (and, with an Idempotency-Key, the claim before it)."""
    limits = cached_limits_for(context, now_ms)
    # Requests that can never be billed reserve nothing: they are limited by
    # the burst only, and the usage API answers even with the quota used up.
    can_bill = getattr(view, "billable", True) and request.method not in UNBILLED_METHODS
    cost = getattr(view, "quota_cost", 1) if can_bill else 0
    endpoint = request._request.resolver_match.view_name or "unknown"
    bucket = usage_bucket(now_ms, limits.period_start_ms, limits.period_end_ms)
    field = usage_field(bucket, context.key_id, endpoint)
    key = request.META.get("HTTP_IDEMPOTENCY_KEY") or None
    if key is None or not cost:
        # The hot path: one round trip, billed at once (most requests succeed).
        decision = check_with_seed(limits, cost=cost, now_ms=now_ms, bill_field=field if cost else None)
        return MeteredRequest(decision, cost, endpoint, field, billed_at_check=bool(cost))
    found, claimed = idempotency.claim(request, context.customer_id, key, now_ms)
    if found.outcome == ClaimOutcome.STORED:
        # A repeat: answered from the stored response, counted against the burst only.
        decision = check_with_seed(limits, cost=0, now_ms=now_ms)
        return MeteredRequest(decision, 0, endpoint, field, billed_at_check=False, replay=found)
    # Reserved now, billed after the response if it succeeds (settle.lua).
    decision = check_with_seed(limits, cost=cost, now_ms=now_ms)
    return MeteredRequest(decision, cost, endpoint, field, billed_at_check=False, claimed=claimed)
