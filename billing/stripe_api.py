"""The one place that builds a Stripe client.

Every call goes through the official `stripe` library with the API version
pinned in settings, so responses have the shape the code was written for.
Retries are not the library's job here: tasks retry with backoff (see
billing.tasks) and web views fail fast, so the library makes one attempt.
"""

from functools import lru_cache

import stripe
from django.conf import settings

from core.errors import AppError


class BillingUnavailable(AppError):
    """Stripe is not configured, or did not answer: the page says so, the API is untouched."""

    status_code = 503
    code = "billing_unavailable"


def is_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str, timeout: float) -> stripe.StripeClient:
    base_addresses = {"api": api_base} if api_base else {}
    return stripe.StripeClient(
        api_key,
        stripe_version=settings.STRIPE_API_VERSION,
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=timeout),
        base_addresses=base_addresses,
    )


def stripe_client() -> stripe.StripeClient:
    if not is_configured():
        raise BillingUnavailable("Billing is not configured on this server (STRIPE_SECRET_KEY is empty).")
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_TIMEOUT_SECONDS)


def is_retryable(error: Exception) -> bool:
    """Worth another attempt later: Stripe unreachable, overloaded or failing
    on its side. A refused card or a bad request will fail the same way again."""
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    if isinstance(error, stripe.StripeError):
        return error.http_status is None or error.http_status >= 500 or error.http_status == 409
    return False
