"""The plan catalogue: tiers, the customers on them, and their subscription state.

The bottom of the house with apikeys: metering, billing's Stripe side and the
pages all read these; nothing here imports them.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Length, Lower
from django.db.models.lookups import Exact

from .currencies import THREE_DECIMAL, ZERO_DECIMAL


class QuotaPeriod(models.TextChoices):
    MINUTE = "minute", "per minute"
    HOUR = "hour", "per hour"
    DAY = "day", "per day"
    # Follows the customer's billing period; a calendar month while they have none.
    MONTH = "month", "per month"


OVERAGE_NEEDS_MONTH = (
    "Overage and spending caps need a quota per month (the billing month); "
    "this tier's quota period is shorter. Use a monthly quota or a hard limit."
)


class Tier(models.Model):
    """A pricing tier: what a customer pays and what they may use."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Flat price per billing period.",
    )
    currency = models.CharField(
        max_length=3,
        default="usd",
        validators=[RegexValidator(r"^[a-z]{3}$", "Use a lowercase ISO 4217 code, e.g. usd.")],
    )
    quota = models.PositiveBigIntegerField(
        validators=[MinValueValidator(1)], help_text="Billable requests per quota period."
    )
    quota_period = models.CharField(max_length=10, choices=QuotaPeriod.choices, default=QuotaPeriod.MONTH)
    burst = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="Requests per second.")
    overage_price_per_1000 = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Price per 1,000 requests over the quota. Empty or 0: a hard limit.",
    )
    # Set by the Stripe catalog sync (billing.gateway); an operator may also paste them.
    stripe_product_id = models.CharField(max_length=255, blank=True)
    stripe_price_id = models.CharField(max_length=255, blank=True, help_text="The flat monthly price.")
    stripe_overage_price_id = models.CharField(
        max_length=255, blank=True, help_text="The metered price of usage over the quota."
    )
    is_public = models.BooleanField(default=True, help_text="Shown on the pricing page.")
    is_active = models.BooleanField(default=True, help_text="Open to new subscriptions.")
    display_order = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "billing_tier"  # created by the billing app, before the catalogue had its own
        ordering = ["display_order", "price", "slug"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="tier_price_not_negative"),
            models.CheckConstraint(condition=Q(quota__gte=1), name="tier_quota_positive"),
            models.CheckConstraint(condition=Q(burst__gte=1), name="tier_burst_positive"),
            models.CheckConstraint(
                condition=Q(quota_period__in=QuotaPeriod.values), name="tier_quota_period_valid"
            ),
            models.CheckConstraint(
                condition=Q(overage_price_per_1000__isnull=True) | Q(overage_price_per_1000__gte=0),
                name="tier_overage_price_not_negative",
            ),
            models.CheckConstraint(
                condition=Exact(Length("currency"), 3) & Exact(Lower("currency"), F("currency")),
                name="tier_currency_lowercase_iso_code",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def has_overage(self) -> bool:
        return bool(self.overage_price_per_1000)

    def clean(self):
        """Refuse what Stripe could not bill as written. Admin and the tiers
        file (sync_tiers runs full_clean) both come through here."""
        errors = {}
        if self.currency in THREE_DECIMAL:
            errors["currency"] = (
                f"{self.currency} is a three-decimal currency, which Stripe bills in "
                "multiples of 10 thousandths; it is not supported. Use another currency."
            )
        elif (
            self.currency in ZERO_DECIMAL
            and self.price is not None
            and self.price != self.price.to_integral()
        ):
            errors["price"] = f"{self.currency} has no minor unit: use a whole number of {self.currency}."
        if self.has_overage and self.quota_period != QuotaPeriod.MONTH:
            # Overage and its cap are counted per billing period: on a daily
            # quota they would be billed over each day's quota, not the month's.
            errors["overage_price_per_1000"] = OVERAGE_NEEDS_MONTH
        if errors:
            raise ValidationError(errors)


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses, plus NONE for a customer who never paid."""

    NONE = "none", "No subscription"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"


# Statuses that hold the paid tier. Unpaid keeps it too, but the API answers
# 402 (Customer.suspended_from); past due keeps access through the grace period.
PAID_ACCESS = frozenset(
    {
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.TRIALING,
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.UNPAID,
    }
)
# The subscription is over: back to the free tier.
ENDED = frozenset(
    {SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED, SubscriptionStatus.PAUSED}
)


class Customer(models.Model):
    """The paying account behind a user: their tier and their Stripe state."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer")
    # PROTECT: deleting a tier must never silently strand its customers.
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="customers")
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    subscription_status = models.CharField(
        max_length=20, choices=SubscriptionStatus.choices, default=SubscriptionStatus.NONE
    )
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    # A negotiated deal for this customer alone; empty means the tier's value.
    quota_override = models.PositiveBigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Replaces the tier's quota."
    )
    burst_override = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Replaces the tier's burst."
    )
    overage_spending_cap = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Most overage billed per month; at the cap, requests over the quota get 429. Empty: none.",
    )
    cancel_at_period_end = models.BooleanField(default=False)
    # Stripe's `created` of the newest event applied to the subscription state:
    # an older delivery arriving late must not overwrite it.
    subscription_event_at = models.DateTimeField(null=True, blank=True)
    # When the current past-due episode began (the grace period counts from
    # it) and when its one warning email went out.
    past_due_since = models.DateTimeField(null=True, blank=True)
    past_due_warned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "billing_customer"
        constraints = [
            models.CheckConstraint(
                condition=Q(quota_override__isnull=True) | Q(quota_override__gte=1),
                name="customer_quota_override_positive",
            ),
            models.CheckConstraint(
                condition=Q(burst_override__isnull=True) | Q(burst_override__gte=1),
                name="customer_burst_override_positive",
            ),
            models.CheckConstraint(
                condition=Q(overage_spending_cap__isnull=True) | Q(overage_spending_cap__gte=0),
                name="customer_overage_spending_cap_not_negative",
            ),
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~Q(stripe_customer_id=""),
                name="customer_stripe_customer_id_unique",
            ),
            models.UniqueConstraint(
                fields=["stripe_subscription_id"],
                condition=~Q(stripe_subscription_id=""),
                name="customer_stripe_subscription_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(subscription_status__in=SubscriptionStatus.values),
                name="customer_subscription_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(current_period_start__isnull=True)
                | Q(current_period_end__isnull=True)
                | Q(current_period_end__gt=models.F("current_period_start")),
                name="customer_period_ends_after_start",
            ),
        ]
        # The operator dashboard's MRR, paying customers and top customers by
        # email: staff without it (or superuser) see usage and refusals only.
        permissions = [("view_revenue", "Can view revenue and customers on the operator dashboard")]

    def __str__(self):
        return self.user.email or self.user.get_username()

    def clean(self):
        has_monthly_quota = self.tier_id is None or self.tier.quota_period == QuotaPeriod.MONTH
        if self.overage_spending_cap is not None and not has_monthly_quota:
            raise ValidationError({"overage_spending_cap": OVERAGE_NEEDS_MONTH})

    @property
    def quota(self) -> int:
        return self.quota_override or self.tier.quota

    @property
    def burst(self) -> int:
        return self.burst_override or self.tier.burst

    @property
    def overage_ceiling(self) -> int | None:
        """With overage and a spending cap: the most units a period may use
        (quota plus what the cap buys). None without a cap or without overage."""
        tier = self.tier
        if not tier.has_overage or self.overage_spending_cap is None:
            return None
        return self.quota + int(self.overage_spending_cap * 1000 / tier.overage_price_per_1000)

    def overage_units(self, used: int) -> int:
        """Units of `used` (a period's usage) billed as overage: those over the
        quota, no more than the spending cap buys."""
        overage = max(0, used - self.quota)
        ceiling = self.overage_ceiling
        return min(overage, ceiling - self.quota) if ceiling is not None else overage

    def suspended_from(self) -> datetime | None:
        """When API access stops for non-payment (402), or None while in good standing.

        Past due keeps access through a grace period from the first failed
        payment; unpaid (Stripe gave up retrying) stops it at once.
        """
        if self.subscription_status == SubscriptionStatus.UNPAID:
            return self.updated_at
        if self.subscription_status == SubscriptionStatus.PAST_DUE:
            due_since = self.past_due_since or self.updated_at
            return due_since + timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS)
        return None
