"""System checks for sign-up and login throttling, and account enumeration.

allauth keeps its attempt counters in the default cache. A dummy cache, or
ACCOUNT_RATE_LIMITS = False, turns the throttle off without a word; so does
optional email verification turn off enumeration prevention at sign-up.
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


@register()
def enumeration_check(app_configs, **kwargs):
    """allauth can answer a registered address as a new one at sign-up only
    with email verification mandatory; otherwise it says "already registered"."""
    prevents = getattr(settings, "ACCOUNT_PREVENT_ENUMERATION", True)
    verification = getattr(settings, "ACCOUNT_EMAIL_VERIFICATION", "optional")
    if prevents and verification == "mandatory":
        return []
    return [
        Warning(
            "Sign-up tells anyone whether an email address has an account here.",
            hint="Set ACCOUNT_PREVENT_ENUMERATION = True and ACCOUNT_EMAIL_VERIFICATION = 'mandatory'.",
            id="accounts.W003",
        )
    ]
