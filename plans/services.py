"""Writes for tiers and customers."""

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from core.errors import AppError

from .currencies import plain
from .models import Customer, Tier
from .signals import limits_changed
from .tiers_file import TiersFileError

DEFAULT_TIER_SLUG = "free"


class TierNotFound(AppError):
    status_code = 404
    code = "tier_not_found"


class InvalidEmail(AppError):
    code = "invalid_email"


class TierAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"  # overwritten with the declaration (force)
    KEPT = "kept"  # differs from the declaration; the stored values stay
    UNCHANGED = "unchanged"


def _shown(value) -> str:
    """A field's value as the diff prints it: prices as written in admin."""
    if value is None:
        return "none"
    if isinstance(value, Decimal):
        cents = value.quantize(Decimal("0.01"))
        return str(cents) if cents == value else plain(value)
    return str(value)


@dataclass
class TierChange:
    slug: str
    action: TierAction
    # field -> (stored, declared): the stored value before an update, or the
    # one kept.
    changes: dict[str, tuple] = field(default_factory=dict)

    def describe(self) -> str:
        if self.action == TierAction.UPDATED:
            diffs = ", ".join(
                f"{name} {_shown(old)} -> {_shown(new)}" for name, (old, new) in self.changes.items()
            )
            return f"updated tier {self.slug}: {diffs}"
        if self.action == TierAction.KEPT:
            diffs = ", ".join(
                f"{name} {_shown(stored)} (file: {_shown(declared)})"
                for name, (stored, declared) in self.changes.items()
            )
            return f"kept tier {self.slug} (differs from the file): {diffs}"
        return f"{self.action} tier {self.slug}"


def _validation_messages(slug: str, error: ValidationError) -> list[str]:
    return [
        f"tier '{slug}', field '{name}': {message}" if name != "__all__" else f"tier '{slug}': {message}"
        for name, messages in error.message_dict.items()
        for message in messages
    ]


def _prepare_tier(slug: str, declared: dict, *, force: bool) -> tuple[Tier, TierChange]:
    """Apply the declared values to the tier (new or existing) and validate
    them, whether or not they will be saved: a bad declaration is refused
    even for a tier that is kept."""
    tier = Tier.objects.select_for_update().filter(slug=slug).first()
    if tier is None:
        tier = Tier(slug=slug)
        _apply(tier, declared)
        return tier, TierChange(slug=slug, action=TierAction.CREATED)
    before = {name: getattr(tier, name) for name in declared}
    _apply(tier, declared)
    changes = {
        name: (before[name], getattr(tier, name)) for name in declared if before[name] != getattr(tier, name)
    }
    if not changes:
        return tier, TierChange(slug=slug, action=TierAction.UNCHANGED)
    return tier, TierChange(
        slug=slug, action=TierAction.UPDATED if force else TierAction.KEPT, changes=changes
    )


def _apply(tier: Tier, declared: dict) -> None:
    for name, value in declared.items():
        setattr(tier, name, value)
    tier.full_clean()  # also turns "29.00" into Decimal and checks DB constraints


@transaction.atomic
def tiers_sync(*, declared_tiers: dict[str, dict], force: bool = False) -> list[TierChange]:
    """Create the declared tiers (slug -> fields) that do not exist. All or nothing.

    A tier that exists is never overwritten unless `force`: an operator may
    have edited it in admin since, and a deploy or `make run` must not undo
    that silently. Its differences are returned (action KEPT) for the caller
    to print. With `force` the declared fields are written (UPDATED) and
    limits_changed is sent for those tiers. Fields a declaration leaves out
    are never touched (the tiers file declares its own defaults, see
    plans.tiers_file). Raises TiersFileError listing every problem; nothing
    is written then.
    """
    prepared, problems = [], []
    for slug, declared in declared_tiers.items():
        try:
            prepared.append(_prepare_tier(slug, declared, force=force))
        except ValidationError as error:
            problems += _validation_messages(slug, error)
    if problems:
        raise TiersFileError("\n".join(problems))
    for tier, change in prepared:
        if change.action in (TierAction.CREATED, TierAction.UPDATED):
            tier.save()
    updated = [tier for tier, change in prepared if change.action == TierAction.UPDATED]
    if updated:
        limits_changed.send(sender=Tier, tiers=updated)
    return [change for _, change in prepared]


def tier_get(*, slug: str) -> Tier:
    try:
        return Tier.objects.get(slug=slug)
    except Tier.DoesNotExist:
        raise TierNotFound(
            f"Tier '{slug}' does not exist. Load tiers with 'python manage.py sync_tiers'."
        ) from None


@transaction.atomic
def customer_get_or_create(*, email: str, tier_slug: str = DEFAULT_TIER_SLUG) -> tuple[Customer, bool]:
    """The customer for an email, creating user and customer when missing.

    The tier applies to a new customer only; an existing one keeps theirs.
    """
    email = get_user_model().objects.normalize_email(email.strip()).lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidEmail(f"'{email}' is not a valid email address.") from None
    user, _ = get_user_model().objects.get_or_create(username=email, defaults={"email": email})
    existing = Customer.objects.select_related("tier").filter(user=user).first()
    if existing is not None:
        return existing, False
    return Customer.objects.create(user=user, tier=tier_get(slug=tier_slug)), True


def customer_ensure(*, user) -> Customer:
    """The user's customer, created on the default (free) tier when missing.

    Sign-up calls it, and so does the dashboard, for users made another way
    (createsuperuser, admin). The one-to-one column is unique, so concurrent
    calls end with one row: get_or_create retries its get on the conflict.
    """
    customer = Customer.objects.select_related("tier").filter(user=user).first()
    if customer is not None:
        return customer
    customer, _ = Customer.objects.select_related("tier").get_or_create(
        user=user, defaults={"tier": tier_get(slug=DEFAULT_TIER_SLUG)}
    )
    return customer
