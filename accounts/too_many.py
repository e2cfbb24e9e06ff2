"""The HTML 429 page of sign-up, login and the other account forms (allauth's
per-address rate limits, ACCOUNT_RATE_LIMITS), saying when to try again as a
date and time (UTC).

allauth has no public way to say until when a limit holds. As accounts.lockout
does, on the allauth version it is tested with this reads the attempts allauth
counts in the cache (their times, per action and rate) and answers when the
last of this address's spent rates has room again; on any other version, or
if nothing spent is found (a limit per address of email), the page says so
without a time rather than guess one.
"""

import math
import time
from datetime import UTC, datetime
from http import HTTPStatus

import allauth
from django.core.cache import cache
from django.shortcuts import render

from .lockout import TESTED_ALLAUTH_VERSION

try:
    from allauth.account import app_settings as allauth_account_settings
    from allauth.core.internal import ratelimit as allauth_ratelimit
except ImportError:  # moved in another version: no time on the page
    allauth_ratelimit = None

APP = "allauth.account"


def reset_at(request) -> datetime | None:
    """When every per-IP rate this address has spent has room again, or None."""
    if allauth.__version__ != TESTED_ALLAUTH_VERSION or allauth_ratelimit is None:
        return None
    now, resets = time.time(), []
    for action in allauth_account_settings.RATE_LIMITS:
        for rate in allauth_ratelimit.get_rates(app=APP, action=action):
            if rate.per != "ip":
                continue  # per user or email: not this request's to read
            key = allauth_ratelimit.get_cache_key(request, app=APP, action=action, rate=rate)
            counted = sorted((t for t in cache.get(key, []) if t > now - rate.duration), reverse=True)
            if len(counted) >= rate.amount:
                resets.append(counted[rate.amount - 1] + rate.duration)
    return datetime.fromtimestamp(max(resets), UTC) if resets else None


def too_many_requests(request):
    """settings.ROOT_URLCONF's handler429, which allauth calls when it refuses."""
    when = reset_at(request)
    response = render(request, "429.html", {"reset_at": when}, status=HTTPStatus.TOO_MANY_REQUESTS)
    if when is not None:
        response["Retry-After"] = str(max(1, math.ceil(when.timestamp() - time.time())))
    return response
