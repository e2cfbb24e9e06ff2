"""Writes for tiers and customers."""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from core.errors import AppError

from .models import Customer, Tier
from .signals import limits_changed
from .tiers_file import TiersFileError

DEFAULT_TIER_SLUG = "free"


class TierNotFound(AppError):
    status_code = 404
    code = "tier_not_found"


class InvalidEmail(AppError):
    code = "invalid_email"


@dataclass
class TierChange:
    slug: str
    action: str  # "created", "updated" or "unchanged"
    changes: dict[str, tuple] = field(default_factory=dict)  # field -> (old, new)

    def describe(self) -> str:
        if self.action != "updated":
            return f"{self.action} tier {self.slug}"
        diffs = ", ".join(f"{name} {old!s} -> {new!s}" for name, (old, new) in self.changes.items())
        return f"updated tier {self.slug}: {diffs}"


def _validation_messages(slug: str, error: ValidationError) -> list[str]:
    return [
        f"tier '{slug}', field '{name}': {message}" if name != "__all__" else f"tier '{slug}': {message}"
        for name, messages in error.message_dict.items()
        for message in messages
    ]


def _prepare_tier(slug: str, declared: dict) -> tuple[Tier, TierChange]:
    """Apply the declared values to the tier (new or existing) and validate it."""
    tier = Tier.objects.select_for_update().filter(slug=slug).first()
    created = tier is None
    tier = tier or Tier(slug=slug)
    before = {name: getattr(tier, name) for name in declared}
    for name, value in declared.items():
        setattr(tier, name, value)
    tier.full_clean()  # also turns "29.00" into Decimal and checks DB constraints
    changes = {
        name: (before[name], getattr(tier, name)) for name in declared if before[name] != getattr(tier, name)
    }
    action = "created" if created else ("updated" if changes else "unchanged")
    return tier, TierChange(slug=slug, action=action, changes={} if created else changes)


@transaction.atomic
def tiers_sync(*, declared_tiers: dict[str, dict]) -> list[TierChange]:
    """Upsert tiers from declarations (slug -> fields). All or nothing.

    Fields a declaration leaves out keep their stored value, so an operator's
    admin edits of other fields (and a synced stripe_price_id) survive.
    Raises TiersFileError listing every problem; nothing is written then.
    """
    prepared, problems = [], []
    for slug, declared in declared_tiers.items():
        try:
            prepared.append(_prepare_tier(slug, declared))
        except ValidationError as error:
            problems += _validation_messages(slug, error)
    if problems:
        raise TiersFileError("\n".join(problems))
    for tier, change in prepared:
        if change.action != "unchanged":
            tier.save()
    updated = [tier for tier, change in prepared if change.action == "updated"]
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
