"""After the view: settle the request (bill it or refund it), sample its cost,
alert on quota thresholds, and write the rate limit headers.

Everything after the view costs at most one Redis round trip (settle.lua).

Rate limit headers go on every API response that went through the limiter.

IETF draft (draft-ietf-httpapi-ratelimit-headers, the Limit/Remaining/Reset
form) plus the common X-RateLimit-* trio:

- `RateLimit-Policy: 20;w=1;name="burst", 50000;w=2592000;name="quota"`
- `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds from
  now) describe the limit closest to refusing: the one that refused, else the
  one with fewer requests left;
- `X-RateLimit-Limit`, `X-RateLimit-Remaining` likewise, `X-RateLimit-Reset`
  as a Unix time;
- `Retry-After` (seconds, rounded up) on a 429.
"""

import logging
import math
import random
from dataclasses import replace

from django.conf import settings

from .alerts import thresholds_crossed
from .cost import CostMeter
from .limiter import Decision, LimiterUnavailable, Reason
from .throttling import METERING_ATTRIBUTE, MeteredRequest
from .usage import is_billable, settle

logger = logging.getLogger(__name__)


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    limits = decision.limits
    quota_window = round((limits.period_end - limits.period_start).total_seconds())
    burst = (limits.burst, decision.burst_remaining, decision.burst_reset_seconds)
    quota = (limits.quota, decision.quota_remaining, decision.quota_reset_seconds)
    if decision.reason == Reason.BURST:
        limit, remaining, reset = burst
    elif decision.reason == Reason.QUOTA:
        limit, remaining, reset = quota
    else:
        limit, remaining, reset = min(burst, quota, key=lambda item: item[1])
    headers = {
        "RateLimit-Policy": f'{limits.burst};w=1;name="burst", {limits.quota};w={quota_window};name="quota"',
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(remaining),
        "RateLimit-Reset": str(reset),
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(math.ceil(decision.now_ms / 1000) + reset),
    }
    if not decision.admitted:
        headers["Retry-After"] = str(decision.retry_after_seconds)
    return headers


class MeteringMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meter = CostMeter() if random.random() < settings.COST_SAMPLE_RATE else None
        response = self.get_response(request)
        sample = meter.finish(response) if meter else None
        metered: MeteredRequest | None = getattr(request, METERING_ATTRIBUTE, None)
        if metered is None:
            return response
        decision = metered.decision
        if decision.admitted:
            decision = _settle(request, response, metered, sample)
        for name, value in rate_limit_headers(decision).items():
            response[name] = value
        return response


def _endpoint(request) -> str:
    match = request.resolver_match
    return (match.view_name if match else None) or "unknown"


def _settle(request, response, metered: MeteredRequest, sample) -> Decision:
    """Bill or refund the reserved units; returns the decision with the settled usage."""
    decision = metered.decision
    try:
        settlement = settle(
            decision,
            billable=metered.billable_view and is_billable(request.method, response.status_code),
            key_id=metered.key_id,
            endpoint=_endpoint(request),
            cost=metered.cost,
            idempotency_key=request.headers.get("Idempotency-Key") or None,
            sample=sample,
        )
    except LimiterUnavailable:
        # The response is ready; failing it now would punish the client for our
        # outage. The reserved units stay counted against the quota, unbilled.
        logger.error("settle failed: Redis unreachable after the view", exc_info=True)
        return decision
    if settlement.billed:
        _queue_alerts(decision.limits, settlement.used - metered.cost, settlement.used)
    return replace(decision, quota_used=settlement.used)


def _queue_alerts(limits, used_before: int, used_after: int) -> None:
    from .tasks import send_quota_alert

    for threshold in thresholds_crossed(quota=limits.quota, used_before=used_before, used_after=used_after):
        try:
            send_quota_alert.delay(limits.customer_id, limits.period_start.isoformat(), threshold)
        except Exception:
            logger.exception(
                "could not queue the %s%% quota alert for customer %s", threshold, limits.customer_id
            )
