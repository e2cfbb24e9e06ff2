"""Rate limit headers on every API response that went through the limiter.

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

import math

from .limiter import Decision, Reason
from .throttling import DECISION_ATTRIBUTE


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


class RateLimitHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        decision = getattr(request, DECISION_ATTRIBUTE, None)
        if decision is not None:
            for name, value in rate_limit_headers(decision).items():
                response[name] = value
        return response
