"""Reads for API keys."""

from django.conf import settings
from django.db.models import F, QuerySet

from . import keys
from .models import APIKey


def api_key_get_by_raw(raw_key: str) -> APIKey | None:
    """The stored key matching a raw key, with its customer and tier, or None.

    The lookup is by HMAC, an indexed equality on a value the caller cannot
    choose freely; the final comparison is constant time all the same.
    """
    hashed = keys.hash_key(raw_key, settings.API_KEY_PEPPER)
    api_key = (
        APIKey.objects.select_related("customer__tier", "customer__user").filter(hashed_key=hashed).first()
    )
    if api_key is None or not keys.verify_key(raw_key, api_key.hashed_key, settings.API_KEY_PEPPER):
        return None
    return api_key


def api_keys_of_customer(*, customer_id: int) -> QuerySet[APIKey]:
    """A customer's keys, newest first: active ones, then revoked or expired."""
    return APIKey.objects.filter(customer_id=customer_id).order_by(
        F("revoked_at").desc(nulls_first=True), "-created_at"
    )
