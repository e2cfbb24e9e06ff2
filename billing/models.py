from datetime import UTC, timedelta

from django.db import models
from django.db.models import Q

from plans.models import Customer, Tier


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    APPLIED = "applied", "Applied"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class StripeEvent(models.Model):
    """A verified webhook delivery, stored once by Stripe's event id.

    The unique id is what makes a repeated delivery do nothing more; the
    status is what an operator reads (and replays) in admin.
    """

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    stripe_created = models.DateTimeField(help_text="When Stripe created the event.")
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=EventStatus.choices, default=EventStatus.RECEIVED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=EventStatus.values), name="stripe_event_status_valid"
            ),
        ]
        # Replaying applies Stripe's state to a customer again: more than viewing.
        permissions = [("replay_stripeevent", "Can replay Stripe event")]

    def __str__(self):
        return f"{self.type} {self.stripe_id}"


class SyncStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class StripeSync(models.Model):
    """One outbound change sent to Stripe by a task (catalog, overage report...).

    `idempotency_key` is sent with every attempt, so a retry or a replay from
    admin never duplicates the side effect in Stripe.
    """

    operation = models.CharField(max_length=50)
    target = models.CharField(max_length=255, help_text="What it is about, e.g. tier:pro or customer:12.")
    arguments = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=10, choices=SyncStatus.choices, default=SyncStatus.PENDING)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "Stripe sync"
        indexes = [models.Index(fields=["status", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=SyncStatus.values), name="stripe_sync_status_valid"
            ),
        ]
        # Replaying sends the change to Stripe again: more than viewing.
        permissions = [("replay_stripesync", "Can replay Stripe sync")]

    def __str__(self):
        return f"{self.operation} {self.target}"


class OverageReport(models.Model):
    """Overage units of one customer in one hour, reported to Stripe as one
    Billing Meter event whose identifier is this row's: re-sending it cannot
    bill twice.

    `hour` is the start of the usage bucket the units were counted up to (the
    period's start when that falls inside the hour); the billing period they
    belong to is stored with them, so a closed period is still settled with
    its own bounds after the renewal (empty on rows older than that).
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="overage_reports")
    hour = models.DateTimeField()
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    units = models.PositiveBigIntegerField()
    identifier = models.CharField(max_length=100, unique=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "hour"], name="overage_report_once_per_hour"),
        ]

    def __str__(self):
        return f"{self.units} overage units for customer {self.customer_id} at {self.hour:%Y-%m-%d %H:00}"

    def meter_timestamp(self) -> int:
        """The meter event's time: the end of its hour (or of its period, when
        that comes first), minus a second to stay inside both."""
        end = self.hour.astimezone(UTC) + timedelta(hours=1)
        if self.period_end is not None:
            end = min(end, self.period_end)
        return int(end.timestamp()) - 1


class ClosedPeriod(models.Model):
    """A customer's monthly quota period that a renewal closed, or the part of
    one a plan change or cancellation closed, with the limits in force then.

    Written by subscription_apply as the customer moves on (billing.overage),
    so that usage flushed after it is still settled with its own bounds and
    prices, not the customer's new ones, and the reconcile
    (billing.usage_reconcile) compares whole past periods. `start` is the
    quota period's start; `end` where the next period starts (every usage
    bucket falls in exactly one period), or the moment the tier changed.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="closed_periods")
    start = models.DateTimeField()
    end = models.DateTimeField()
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    quota = models.PositiveBigIntegerField()
    overage_billed = models.BooleanField(help_text="Overage over the quota was billed to Stripe.")
    overage_ceiling = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Most units the spending cap allowed (quota included); empty: no cap.",
    )
    closed_at = models.DateTimeField()

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "start", "end"], name="closed_period_once"),
        ]

    def __str__(self):
        return f"customer {self.customer_id}: {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"

    def overage_units(self, used: int) -> int:
        """As Customer.overage_units, with the limits the period had."""
        if not self.overage_billed:
            return 0
        overage = max(0, used - self.quota)
        return overage if self.overage_ceiling is None else min(overage, self.overage_ceiling - self.quota)


class UsageReconcileRun(models.Model):
    """One run of the three-way usage reconcile (billing.usage_reconcile): how
    many customer periods it compared, and the drifting ones as they were then."""

    ran_at = models.DateTimeField()
    periods = models.CharField(max_length=200, help_text="The periods compared, e.g. previous, current.")
    rows_checked = models.PositiveIntegerField(default=0, help_text="Customer periods with any usage.")
    drifting_rows = models.PositiveIntegerField(default=0)
    stripe_checked = models.BooleanField(help_text="False without Stripe configured: its column was skipped.")
    drift = models.JSONField(default=list, blank=True, help_text="The drifting rows, one object each.")

    class Meta:
        ordering = ["-ran_at"]
        verbose_name = "usage reconcile run"

    def __str__(self):
        return f"usage reconcile {self.ran_at:%Y-%m-%d %H:%M}: {self.drifting_rows} drifting"
