"""Overage: usage over the quota on tiers that sell it, reported to Stripe.

Every hour, for each subscribed customer on an overage tier, the overage of
the period so far (units over the quota, from the flushed usage) is compared
with what was already reported; the difference becomes one OverageReport for
the last complete hour, whose identifier is sent with the Billing Meter event.
Counted cumulatively, so usage flushed late is reported the next hour rather
than lost, and an hour is never reported twice (one row per customer and hour).
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum

from metering.periods import period_bounds

from .models import Customer, OverageReport
from .subscriptions import PAID_ACCESS

# Usage of an hour reaches PostgreSQL with the next flush (every minute by
# default): an hour is reported once this much later.
REPORT_DELAY = timedelta(minutes=10)


def overage_identifier(customer_id: int, hour: datetime) -> str:
    return f"overage-{customer_id}-{int(hour.timestamp())}"


def _period_overage(customer: Customer, used: int) -> int:
    overage = max(0, used - customer.quota)
    ceiling = customer.overage_ceiling
    return min(overage, ceiling - customer.quota) if ceiling is not None else overage


def overage_reports_create(*, now: datetime) -> list[OverageReport]:
    """Record the overage not yet reported, one row per customer, for the last
    hour that ended at least REPORT_DELAY ago. Returns the new rows."""
    from metering.models import UsageRecord

    cutoff = (now - REPORT_DELAY).replace(minute=0, second=0, microsecond=0)
    hour = cutoff - timedelta(hours=1)  # the hour [hour, cutoff) is complete
    customers = (
        Customer.objects.select_related("tier")
        .filter(tier__overage_price_per_1000__gt=0, subscription_status__in=PAID_ACCESS)
        .exclude(stripe_customer_id="")
    )
    created = []
    for customer in customers:
        start, end = period_bounds(
            customer.tier.quota_period, hour, customer.current_period_start, customer.current_period_end
        )
        used = (
            UsageRecord.objects.filter(customer=customer, hour__gte=start, hour__lt=cutoff).aggregate(
                total=Sum("count")
            )["total"]
            or 0
        )
        reported = (
            OverageReport.objects.filter(customer=customer, hour__gte=start, hour__lt=end).aggregate(
                total=Sum("units")
            )["total"]
            or 0
        )
        units = _period_overage(customer, used) - reported
        if units <= 0:
            continue
        try:
            with transaction.atomic():
                created.append(
                    OverageReport.objects.create(
                        customer=customer,
                        hour=hour,
                        units=units,
                        identifier=overage_identifier(customer.pk, hour),
                    )
                )
        except IntegrityError:
            continue  # this hour was recorded by a concurrent run
    return created


@dataclass(frozen=True)
class ProjectedBill:
    currency: str
    flat: Decimal
    overage_units: int
    overage: Decimal
    projected_overage_units: int
    projected_total: Decimal


def projected_bill(
    customer: Customer, *, used: int, period_start: datetime, period_end: datetime, now: datetime
) -> ProjectedBill:
    """The period's bill: the flat price, the overage so far, and the total if
    usage goes on at the period's average rate (capped by the spending cap)."""
    tier = customer.tier
    elapsed = max((now - period_start).total_seconds(), 1.0)
    length = (period_end - period_start).total_seconds()
    projected_used = math.ceil(used * max(length / elapsed, 1.0))
    price = tier.overage_price_per_1000 or Decimal(0)
    overage_units = _period_overage(customer, used) if price else 0
    projected_units = _period_overage(customer, projected_used) if price else 0
    per_unit = price / 1000
    overage = (per_unit * overage_units).quantize(Decimal("0.01"))
    return ProjectedBill(
        currency=tier.currency,
        flat=tier.price,
        overage_units=overage_units,
        overage=overage,
        projected_overage_units=projected_units,
        projected_total=(tier.price + per_unit * projected_units).quantize(Decimal("0.01")),
    )


def report_timestamp(report: OverageReport) -> int:
    """The meter event's time: the end of its hour, minus a second to stay inside it."""
    return int((report.hour.astimezone(UTC) + timedelta(hours=1)).timestamp()) - 1
