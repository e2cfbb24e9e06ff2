"""Reads for tiers and customers."""

from django.db.models import QuerySet

from .models import Tier


def tiers_public() -> QuerySet[Tier]:
    return Tier.objects.filter(is_public=True, is_active=True)
