"""Writes for API keys."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import AppError
from plans.models import Customer

from . import keys, peppers
from .context import forget_rejected_key, invalidate_key_contexts
from .models import APIKey, KeyStatus


class InvalidKeyName(AppError):
    code = "invalid_key_name"


class KeyNotActive(AppError):
    status_code = 409
    code = "key_not_active"


@dataclass(frozen=True)
class CreatedKey:
    api_key: APIKey
    raw_key: str  # shown to the customer once, never stored


def api_key_create(
    *,
    customer: Customer,
    name: str,
    expires_at: datetime | None = None,
    scopes: list[str] | None = None,
) -> CreatedKey:
    name = name.strip()
    max_length = APIKey._meta.get_field("name").max_length
    if not name or len(name) > max_length:
        raise InvalidKeyName(f"A key name must have 1 to {max_length} characters.")
    raw_key = keys.generate_key(settings.API_KEY_PREFIX)
    api_key = APIKey.objects.create(
        customer=customer,
        name=name,
        prefix=keys.public_prefix(raw_key, settings.API_KEY_PREFIX),
        hashed_key=peppers.current_hash(raw_key),
        expires_at=expires_at,
        **({"scopes": scopes} if scopes is not None else {}),
    )
    forget_rejected_key(api_key.hashed_key)
    return CreatedKey(api_key=api_key, raw_key=raw_key)


def api_key_revoke(*, api_key: APIKey) -> bool:
    """Revoke the key; False when it was already revoked (the first time stands)."""
    now = timezone.now()
    updated = APIKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if updated:
        api_key.revoked_at = now
        invalidate_key_contexts(APIKey.objects.filter(pk=api_key.pk))
    return bool(updated)


@transaction.atomic
def api_key_rotate(*, api_key: APIKey) -> CreatedKey:
    """Replace an active key: a new key with its name, scopes and expiry, and
    the old one revoked, both or neither.

    The revocation's conditional UPDATE goes first and decides: of two
    concurrent rotations of one key, the second finds it revoked and makes
    nothing.
    """
    if api_key.status() != KeyStatus.ACTIVE or not api_key_revoke(api_key=api_key):
        raise KeyNotActive(f"The key {api_key.prefix}… is revoked or expired; create a new key instead.")
    return api_key_create(
        customer=api_key.customer,
        name=api_key.name,
        expires_at=api_key.expires_at,
        scopes=list(api_key.scopes),
    )
