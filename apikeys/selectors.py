"""Reads for API keys."""

from datetime import datetime

from django.db.models import Count, F, IntegerField, Q, QuerySet, Value
from django.db.models.functions import Cast, StrIndex, Substr
from django.utils import timezone

from .models import APIKey


def api_keys_of_customer(*, customer_id: int) -> QuerySet[APIKey]:
    """A customer's keys, newest first: active ones, then revoked or expired."""
    return APIKey.objects.filter(customer_id=customer_id).order_by(
        F("revoked_at").desc(nulls_first=True), "-created_at"
    )


def api_keys_active(*, customer_id: int, now: datetime) -> QuerySet[APIKey]:
    """A customer's keys that work at `now`: not revoked, not expired."""
    return APIKey.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now), customer_id=customer_id, revoked_at__isnull=True
    )


def api_keys_active_by_pepper_version() -> dict[int, int]:
    """How many active (not revoked, not expired) keys each pepper version hashes."""
    # "v12$<hex>": the digits between "v" and "$".
    version = Cast(
        Substr("hashed_key", 2, StrIndex("hashed_key", Value("$")) - 2), output_field=IntegerField()
    )
    active = APIKey.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()), revoked_at__isnull=True
    )
    rows = active.annotate(version=version).values("version").annotate(keys=Count("pk")).order_by()
    return {row["version"]: row["keys"] for row in rows}
