"""Overage: usage over the quota on tiers that sell it, reported to Stripe.

Every hour, for each subscribed customer on an overage tier, the overage of
the period so far (units over the quota, from the flushed usage) is compared
with what was already reported; the difference becomes one OverageReport for
the last complete hour, whose identifier is sent with the Billing Meter event.
Counted cumulatively, so usage flushed late is reported the next hour rather
than lost, and an hour is never reported twice (one row per customer and hour).
"""

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Sum

from metering.models import UsageRecord
from plans.models import PAID_ACCESS, Customer
from plans.periods import period_bounds

from .models import OverageReport
from .stripe_api import is_configured
from .sync import stripe_sync_queue

# Usage of an hour reaches PostgreSQL with the next flush (every minute by
# default): an hour is reported once this much later.
REPORT_DELAY = timedelta(minutes=10)


def overage_identifier(customer_id: int, hour: datetime) -> str:
    return f"overage-{customer_id}-{int(hour.timestamp())}"


def overage_reports_create(*, now: datetime) -> list[OverageReport]:
    """Record the overage not yet reported, one row per customer, for the last
    hour that ended at least REPORT_DELAY ago. Returns the new rows."""
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
        units = customer.overage_units(used) - reported
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


def overage_reports_queue(*, now: datetime) -> int:
    """Record each customer's new overage and queue its meter event; how many
    reports were made. Nothing while Stripe is not configured."""
    if not is_configured():
        return 0
    with transaction.atomic():
        reports = overage_reports_create(now=now)
        for report in reports:
            stripe_sync_queue(
                operation="overage",
                target=f"customer:{report.customer_id}",
                arguments={"report_id": report.pk},
                idempotency_key=report.identifier,
            )
    return len(reports)
