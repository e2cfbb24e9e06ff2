"""How long a login lockout has left, for the message that announces it.

Once ACCOUNT_RATE_LIMITS["login_failed"] is spent, allauth refuses every login
of that address from anywhere (and every login from that IP), the right
password included: otherwise the lockout would not stop the guessing. It has
no public way to say until when. On the allauth version this module is tested
with, it reads the failures allauth counts in the cache (the times of the
counted ones, newest first, per rate); on any other version, or if that
module moved, it answers the longest window of the configured rates, which no
lockout outlasts (a refused attempt is not counted).
"""

import math
import time

import allauth
from allauth.account.adapter import get_adapter
from django.conf import settings
from django.core.cache import cache

try:
    from allauth.core.internal import ratelimit as allauth_ratelimit
except ImportError:  # moved in another version: the public fallback below
    allauth_ratelimit = None

TESTED_ALLAUTH_VERSION = "65.21.1"
ACTION = "login_failed"
ALLAUTH_DEFAULT_RATES = "10/m/ip,5/5m/key"  # allauth's login_failed default
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def lockout_minutes(request, **credentials) -> int:
    """Whole minutes (at least 1) until the login with `credentials` may be tried again."""
    if allauth.__version__ == TESTED_ALLAUTH_VERSION and allauth_ratelimit is not None:
        seconds = _seconds_left(request, credentials)
    else:
        seconds = _longest_window()
    return max(1, math.ceil(seconds / 60))


def _seconds_left(request, credentials: dict) -> float:
    """Until every spent rate has room again: the oldest counted failure that
    must expire, plus its window, minus now."""
    login_key = get_adapter(request)._get_login_attempts_cache_key(request, **credentials)
    now = time.time()
    waits = [0.0]
    for rate in allauth_ratelimit.get_rates(app="allauth.account", action=ACTION):
        if rate.per not in ("ip", "key"):
            continue  # login_failed is counted per IP and per address only
        cache_key = allauth_ratelimit.get_cache_key(
            request, app="allauth.account", action=ACTION, rate=rate, key=login_key
        )
        counted = sorted((t for t in cache.get(cache_key, []) if t > now - rate.duration), reverse=True)
        if len(counted) >= rate.amount:
            waits.append(counted[rate.amount - 1] + rate.duration - now)
    return max(waits)


def _longest_window() -> float:
    """The longest window among the login_failed rates, e.g. 300 for "10/m/ip,5/5m/key"."""
    rates = (getattr(settings, "ACCOUNT_RATE_LIMITS", None) or {}).get(ACTION, ALLAUTH_DEFAULT_RATES)
    return max((_window_seconds(rate) for rate in (rates or "").split(",") if rate.strip()), default=60)


def _window_seconds(rate: str) -> float:
    """The window of one rate, "amount/window[/per]": "5m" is 300, "m" is 60."""
    window = rate.strip().split("/")[1]
    return float(window[:-1] or 1) * UNIT_SECONDS[window[-1]]
