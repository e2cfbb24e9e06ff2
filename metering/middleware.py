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
import time
from dataclasses import replace

from django.conf import settings

from . import idempotency
from .alerts import thresholds_reached
from .cost import CostMeter, cost_aggregator
from .keys import hour_of
from .limiter import Decision, LimiterUnavailable, Reason, SettleRequest
from .tasks import send_quota_alert, settle_again
from .throttling import METERING_ATTRIBUTE, MeteredRequest
from .usage import is_billable, settle_arguments, settle_request

logger = logging.getLogger(__name__)


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    limits = decision.limits
    # The limit that refused, else the one with fewer requests left (the burst on a tie).
    if decision.reason == Reason.BURST or (
        decision.reason != Reason.QUOTA and decision.burst_remaining <= decision.quota_remaining
    ):
        limit, remaining, reset = limits.burst, decision.burst_remaining, decision.burst_reset_seconds
    else:
        limit, remaining, reset = limits.quota, decision.quota_remaining, decision.quota_reset_seconds
    limit, remaining = str(limit), str(remaining)
    headers = {
        "RateLimit-Policy": limits.rate_limit_policy,
        "RateLimit-Limit": limit,
        "RateLimit-Remaining": remaining,
        "RateLimit-Reset": str(reset),
        "X-RateLimit-Limit": limit,
        "X-RateLimit-Remaining": remaining,
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
        if response.status_code == PAYMENT_REQUIRED:
            _count_refusal(request, response.status_code)
        if metered is None:
            return response
        decision = metered.decision
        if metered.replay is not None and decision.admitted:
            response = idempotency.replayed_response(metered.replay)  # the view did not run
        if decision.admitted:
            if sample is not None:
                cost_aggregator.add(hour_of(decision.now_ms), metered.endpoint, sample)
            decision = _settle(request, response, metered)
        for name, value in rate_limit_headers(decision).items():
            response[name] = value
        return response


# A 429 is counted by the limiter's own call as it refuses (check_and_reserve.lua,
# in the customer's pending hash); a 402 never reaches the limiter, so it rides
# along with the cost samples.
PAYMENT_REQUIRED = 402


def _count_refusal(request, status: int) -> None:
    context = getattr(request, "auth", None)  # DRF copies its auth onto the Django request
    customer_id = getattr(context, "customer_id", None)
    if customer_id is not None:
        cost_aggregator.add_refusal(hour_of(int(time.time() * 1000)), customer_id, status)


def _settle(request, response, metered: MeteredRequest) -> Decision:
    """Correct the check's billing guess when needed; returns the settled decision."""
    decision = metered.decision
    if not metered.cost:
        return decision  # reserved nothing, bills nothing
    billable = is_billable(request.method, response.status_code)
    if billable and metered.billed_at_check:
        _queue_alerts(decision.limits, decision.quota_used)  # the common case: no round trip
        return decision
    request_to_settle = SettleRequest(
        decision=decision,
        billed_at_check=metered.billed_at_check,
        billable=billable,
        cost=metered.cost,
        usage_field=metered.usage_field,
        claimed=_claimed(metered.claimed, response, billable),
    )
    try:
        settlement = settle_request(request_to_settle)
    except LimiterUnavailable:
        # The response is ready; failing it now would punish the client for our
        # outage. The settle did not run (its deadline saw to that): retried.
        _settle_later(request_to_settle)
        return decision
    if settlement.billed:
        _queue_alerts(decision.limits, settlement.used)
    return replace(decision, quota_used=settlement.used)


def _settle_later(request: SettleRequest) -> None:
    try:
        settle_again.delay(settle_arguments(request))
    except Exception:
        # The broker is out too (or, with eager tasks, Redis still is): the
        # unit stays as the check left it, and reconcile_usage reports it.
        logger.error("settle lost: Redis and the retry queue out of reach (%s)", request.usage_field)
    else:
        logger.warning("settle queued for retry: Redis out of reach after the view (%s)", request.usage_field)


def _claimed(claimed, response, billable: bool):
    """The Idempotency-Key claim, with the response to keep when it succeeded."""
    if claimed is None or not billable:
        return claimed
    return idempotency.kept(claimed, response)


# Alerts already queued by this process: queue each at most once per process,
# the database's unique row makes it once overall.
_alerts_queued: set[tuple[int, float, int]] = set()


def _queue_alerts(limits, used: int) -> None:
    """Queue an alert for every threshold reached. Reached, not crossed: the
    request that crossed it may have failed and been refunded meanwhile."""
    reached = thresholds_reached(quota=limits.quota, used=used)
    if not reached:
        return  # nearly every request
    period = limits.period_start.timestamp()
    for threshold in reached:
        if (limits.customer_id, period, threshold) in _alerts_queued:
            continue
        try:
            send_quota_alert.delay(limits.customer_id, limits.period_start.isoformat(), threshold)
        except Exception:
            logger.exception(
                "could not queue a %s%% quota alert (customer %s)", threshold, limits.customer_id
            )
            continue
        if len(_alerts_queued) > 100_000:
            _alerts_queued.clear()
        _alerts_queued.add((limits.customer_id, period, threshold))
