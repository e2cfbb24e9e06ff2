"""Writes for API keys."""

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import AppError
from plans.models import Customer

from . import keys, peppers
from .context import forget_rejected_key, invalidate_key_contexts
from .models import APIKey
from .selectors import api_keys_active

# Unicode categories that show nothing: control (Cc), format (Cf: zero-width
# spaces and joiners, BOM, bidi marks), surrogates, private use, unassigned.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


class InvalidKeyName(AppError):
    code = "invalid_key_name"


class KeyNotActive(AppError):
    status_code = 409
    code = "key_not_active"


class TooManyKeys(AppError):
    status_code = 409
    code = "too_many_keys"


@dataclass(frozen=True)
class CreatedKey:
    api_key: APIKey
    raw_key: str  # shown to the customer once, never stored


def key_name_clean(name: str) -> str:
    """The name as stored: invisible characters removed, every run of
    whitespace (tabs, no-break and line separators included) one space,
    trimmed. Raises InvalidKeyName when nothing visible is left or it is too long."""
    kept = "".join(
        " " if char.isspace() else char
        for char in name
        if char.isspace() or unicodedata.category(char) not in INVISIBLE_CATEGORIES
    )
    cleaned = " ".join(kept.split())
    max_length = APIKey._meta.get_field("name").max_length
    if not cleaned:
        raise InvalidKeyName("A key name needs at least one visible character.")
    if len(cleaned) > max_length:
        raise InvalidKeyName(f"A key name must have at most {max_length} characters.")
    return cleaned


def _refuse_past_the_limit(
    customer_id: int, now: datetime, *, instead: str = "revoke one you no longer use first"
) -> None:
    """Raises TooManyKeys when the customer has API_KEYS_PER_CUSTOMER active keys.

    Called inside a transaction holding the customer's row lock
    (_lock_keys_of), so two concurrent creations cannot both pass the count.
    """
    limit = settings.API_KEYS_PER_CUSTOMER
    if api_keys_active(customer_id=customer_id, now=now).count() >= limit:
        keys_word = "key" if limit == 1 else "keys"
        raise TooManyKeys(f"You have {limit} active {keys_word}, the most allowed: {instead}.")


def _lock_keys_of(customer_id: int) -> None:
    Customer.objects.select_for_update().filter(pk=customer_id).values_list("pk").first()


def _create(
    customer: Customer, name: str, expires_at: datetime | None, scopes: list[str] | None
) -> CreatedKey:
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


@transaction.atomic
def api_key_create(
    *,
    customer: Customer,
    name: str,
    expires_at: datetime | None = None,
    scopes: list[str] | None = None,
    now: datetime | None = None,
) -> CreatedKey:
    """A new active key; TooManyKeys past API_KEYS_PER_CUSTOMER active keys."""
    name = key_name_clean(name)
    _lock_keys_of(customer.pk)
    _refuse_past_the_limit(customer.pk, now or timezone.now())
    return _create(customer, name, expires_at, scopes)


def api_key_revoke(*, api_key: APIKey) -> bool:
    """Revoke the key; False when it was already revoked (the first time stands)."""
    now = timezone.now()
    updated = APIKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if updated:
        api_key.revoked_at = now
        invalidate_key_contexts(APIKey.objects.filter(pk=api_key.pk))
    return bool(updated)


@transaction.atomic
def api_key_rotate(
    *, api_key: APIKey, overlap: timedelta = timedelta(0), now: datetime | None = None
) -> CreatedKey:
    """Replace an active key with a new one of its name, scopes and expiry.

    With no overlap the old key is revoked now. With one, it keeps working
    until `now + overlap` (or its own earlier expiry), so a deployment can
    move to the new key without an outage; it is marked rotated and both
    keys count against the limit meanwhile.

    The old key's conditional UPDATE decides: a key revoked, expired or
    already rotated (a double click, two tabs) is changed by none of them
    and KeyNotActive is raised, with no new key made.
    """
    now = now or timezone.now()
    if overlap > timedelta(0):
        _lock_keys_of(api_key.customer_id)
        _refuse_past_the_limit(
            api_key.customer_id,
            now,
            instead="rotate with no overlap (the old key stops now), or revoke a key you no longer use first",
        )
        ends = now + overlap if api_key.expires_at is None else min(api_key.expires_at, now + overlap)
        changes = {"rotated_at": now, "expires_at": ends}
    else:
        changes = {"rotated_at": now, "revoked_at": now}
    old = api_keys_active(customer_id=api_key.customer_id, now=now).filter(pk=api_key.pk, rotated_at=None)
    if not old.update(**changes):
        raise KeyNotActive(
            f"The key {api_key.prefix}… is revoked or expired, or was already rotated; "
            "create a new key instead."
        )
    # Its cached context still has the old expiry (or no revocation).
    invalidate_key_contexts(APIKey.objects.filter(pk=api_key.pk))
    new = _create(api_key.customer, api_key.name, api_key.expires_at, list(api_key.scopes))
    for field, value in changes.items():
        setattr(api_key, field, value)
    return new
