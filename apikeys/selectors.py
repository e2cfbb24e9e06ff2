"""Reads for API keys."""

from django.db.models import F, QuerySet

from .models import APIKey


def api_keys_of_customer(*, customer_id: int) -> QuerySet[APIKey]:
    """A customer's keys, newest first: active ones, then revoked or expired."""
    return APIKey.objects.filter(customer_id=customer_id).order_by(
        F("revoked_at").desc(nulls_first=True), "-created_at"
    )
