"""System checks for sign-up and login throttling.

allauth keeps its attempt counters in the default cache. A dummy cache, or
ACCOUNT_RATE_LIMITS = False, turns the throttle off without a word.
"""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def rate_limits_check(app_configs, **kwargs):
    problems = []
    if getattr(settings, "ACCOUNT_RATE_LIMITS", None) is False:
        problems.append(
            Warning(
                "ACCOUNT_RATE_LIMITS is False: sign-up and login attempts are not throttled.",
                id="accounts.W001",
            )
        )
    if settings.CACHES["default"]["BACKEND"].endswith("DummyCache"):
        problems.append(
            Warning(
                "The default cache is a DummyCache: allauth cannot count sign-up and login attempts.",
                hint="Use Redis (REDIS_URL) or the in-process cache.",
                id="accounts.W002",
            )
        )
    return problems
