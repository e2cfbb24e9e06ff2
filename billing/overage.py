"""Overage: usage over the quota on tiers that sell it, reported to Stripe.

Every hour, for each subscribed customer on an overage tier, the overage of
the billing period so far (units over the quota, from the flushed usage) is
compared with what was already reported for that period; the difference
becomes one OverageReport for the last complete hour, whose identifier is
sent with the Billing Meter event. Counted cumulatively, so usage flushed
late is reported the next hour rather than lost.

Exactly once, in the period it was served in:
1. Each customer is settled inside a transaction holding their row lock, the
   lock subscription changes take too: two runs that overlap (or a run and a
   renewal) read and write one after the other, never both from the same
   "already reported".
2. Reports carry their period's bounds. A period that has closed (renewed,
   changed, cancelled: a ClosedPeriod row) is settled again with its own
   bounds and limits for LATE_SETTLEMENT after its end, so usage flushed after
   the renewal still lands in it, priced as it was served, even once the
   customer is on another tier or on none that bills overage.
3. Before a customer's tier or period changes (subscription_apply), the
   overage of the tier and period in force is reported up to that moment:
   a plan change or a cancellation does not drop it.

Usage is read by bucket start, `hour >= start, hour < end`: no stored bucket
straddles a period start, so each unit counts in exactly one period.
"""

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum

from metering.models import UsageRecord
from plans.models import PAID_ACCESS, Customer, QuotaPeriod
from plans.periods import period_bounds

from .models import ClosedPeriod, OverageReport
from .stripe_api import is_configured
from .sync import stripe_sync_queue

# Usage of an hour reaches PostgreSQL with the next flush (every minute by
# default): an hour is reported once this much later.
REPORT_DELAY = timedelta(minutes=10)
# How long after its end a closed period still takes usage flushed late.
LATE_SETTLEMENT = timedelta(days=2)


def overage_identifier(customer_id: int, hour: datetime) -> str:
    return f"overage-{customer_id}-{int(hour.timestamp())}"


def _hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _used(customer: Customer, start: datetime, until: datetime) -> int:
    usage = UsageRecord.objects.filter(customer=customer, hour__gte=start, hour__lt=until)
    return usage.aggregate(total=Sum("count"))["total"] or 0


def _reported(customer: Customer, start: datetime, end: datetime) -> int:
    # Rows older than the period columns are found by their hour.
    in_period = Q(period_start=start) | Q(period_start__isnull=True, hour__gte=start, hour__lt=end)
    reports = OverageReport.objects.filter(in_period, customer=customer)
    return reports.aggregate(total=Sum("units"))["total"] or 0


def _free_hour(customer: Customer, start: datetime, last: datetime) -> datetime | None:
    """The latest bucket start from `last` back to `start` without a report.
    Usually `last` itself; an earlier one when a plan change or the period's
    final settlement took it, so that what is left is still reported inside
    its period (a report's hour is its identifier)."""
    taken = set(
        OverageReport.objects.filter(customer=customer, hour__gte=start, hour__lte=last).values_list(
            "hour", flat=True
        )
    )
    hour = last
    while hour in taken:
        if hour <= start:
            return None
        hour = max(_hour_start(hour - timedelta(microseconds=1)), start)
    return hour


def _settle(
    customer: Customer, start: datetime, end: datetime, until: datetime, overage_units=None
) -> OverageReport | None:
    """Record the overage of the period [start, end) served before `until` and
    not reported yet, at the last free bucket before `until`; None when there
    is none. `overage_units`: the period's pricing, the customer's by default."""
    until = min(until, end)
    overage_units = overage_units or customer.overage_units
    units = overage_units(_used(customer, start, until)) - _reported(customer, start, end)
    if units <= 0:
        return None
    hour = _free_hour(customer, start, max(_hour_start(until - timedelta(microseconds=1)), start))
    if hour is None:
        return None
    try:
        with transaction.atomic():
            return OverageReport.objects.create(
                customer=customer,
                hour=hour,
                units=units,
                period_start=start,
                period_end=end,
                identifier=overage_identifier(customer.pk, hour),
            )
    except IntegrityError:
        return None


def _closed_periods(customer: Customer, before: datetime, now: datetime, *, billed: bool) -> dict:
    """(start, end) -> pricing of what closed recently enough to take usage
    flushed late: the ClosedPeriod rows (a tier's part of the period in
    progress too, unless its current tier bills it: `billed`), and the
    periods of older reports, made before those rows existed, that ended by
    `before`."""
    closed = ClosedPeriod.objects.filter(
        customer=customer, overage_billed=True, end__lte=now, end__gt=now - LATE_SETTLEMENT
    )
    if billed:
        closed = closed.filter(end__lte=before)  # the current period's settle counts the rest
    periods = {(row.start, row.end): row.overage_units for row in closed}
    reports = OverageReport.objects.filter(
        customer=customer, period_end__lte=before, period_end__gt=now - LATE_SETTLEMENT
    )
    for period in reports.values_list("period_start", "period_end").distinct():
        periods.setdefault(period, customer.overage_units)
    return periods


def _customer_reports(customer: Customer, *, now: datetime) -> list[OverageReport]:
    """Settle one customer (row locked by the caller) as of `now`: the periods
    that closed recently, and the current one while its tier bills overage."""
    cutoff = _hour_start(now - REPORT_DELAY)
    start, end = period_bounds(
        QuotaPeriod.MONTH,
        cutoff - timedelta(microseconds=1),
        customer.current_period_start,
        customer.current_period_end,
    )
    billed = _billed(customer) and customer.subscription_status in PAID_ACCESS
    closed = _closed_periods(customer, start, now, billed=billed)
    stored = (customer.current_period_start, customer.current_period_end)
    if billed and None not in stored and now - LATE_SETTLEMENT < stored[1] <= start:
        closed.setdefault(stored, customer.overage_units)  # ended, and its renewal is not applied yet
    settled = [
        _settle(customer, *period, until=period[1], overage_units=units) for period, units in closed.items()
    ]
    if billed:
        settled.append(_settle(customer, start, end, until=cutoff))
    return [report for report in settled if report is not None]


def _billed(customer: Customer) -> bool:
    # Overage is counted per billing month. A tier with a shorter quota period
    # and an overage price (refused by Tier.clean, but one may predate it) is
    # left out rather than billed a month's usage over one day's quota.
    tier = customer.tier
    return tier.has_overage and tier.quota_period == QuotaPeriod.MONTH and bool(customer.stripe_customer_id)


def overage_reports_create(*, now: datetime) -> list[OverageReport]:
    """Record the overage not yet reported, up to the last hour that ended at
    least REPORT_DELAY ago, one customer at a time. Returns the new rows."""
    billed_now = Q(tier__overage_price_per_1000__gt=0, subscription_status__in=PAID_ACCESS)
    closed_recently = Q(closed_periods__overage_billed=True, closed_periods__end__gt=now - LATE_SETTLEMENT)
    customer_ids = (
        Customer.objects.filter(billed_now | closed_recently).values_list("pk", flat=True).distinct()
    )
    created = []
    for customer_id in customer_ids:
        with transaction.atomic():
            customer = Customer.objects.select_for_update().select_related("tier").get(pk=customer_id)
            created += _customer_reports(customer, now=now)
    return created


def closed_period_record(
    customer: Customer, *, next_tier_id: int, next_start: datetime | None, now: datetime
) -> ClosedPeriod | None:
    """Keep what closes when the customer moves on, with the limits in force,
    for late usage and the reconcile; None when nothing closes. Call before
    the customer's tier and period change, with its row locked.

    A renewal (or a change after the period ended) closes the quota period
    where the next one starts. A plan change or a cancellation keeps the quota
    period going (subscription_apply step 3) but closes the old tier's part
    of it, now.
    """
    if customer.tier.quota_period != QuotaPeriod.MONTH or next_start is None:
        return None
    stored_start, stored_end = customer.current_period_start, customer.current_period_end
    continuing = next_start == (stored_start or period_bounds(QuotaPeriod.MONTH, now)[0])
    if not continuing:
        start, _ = period_bounds(
            QuotaPeriod.MONTH, next_start - timedelta(microseconds=1), stored_start, stored_end
        )
        end = next_start
    elif next_tier_id != customer.tier_id:
        start, end = period_bounds(QuotaPeriod.MONTH, now, stored_start, stored_end)[0], now
    else:
        return None
    if start >= end:
        return None
    closed, _ = ClosedPeriod.objects.get_or_create(
        customer=customer,
        start=start,
        end=end,
        defaults={
            "tier": customer.tier,
            "quota": customer.quota,
            "overage_billed": _billed(customer),
            "overage_ceiling": customer.overage_ceiling,
            "closed_at": now,
        },
    )
    return closed


def overage_report_before_change(
    customer: Customer, *, now: datetime, closes_at: datetime | None = None
) -> OverageReport | None:
    """Before the customer's tier or period changes: record the overage of the
    tier and period in force, up to `now` (or that period's end). `closes_at`:
    where the change ends what is in force (closed_period_record), so the
    report's meter event falls before it. Call with the customer row locked;
    the meter event is queued after commit."""
    if not (_billed(customer) and is_configured()):
        return None
    start, end = customer.current_period_start, customer.current_period_end
    if start is None or end is None or now < start:
        start, end = period_bounds(QuotaPeriod.MONTH, now, start, end)
    if closes_at is not None and start < closes_at < end:
        end = closes_at
    report = _settle(customer, start, end, until=now)
    if report is not None:
        _queue(report)
    return report


def _queue(report: OverageReport) -> None:
    stripe_sync_queue(
        operation="overage",
        target=f"customer:{report.customer_id}",
        arguments={"report_id": report.pk},
        idempotency_key=report.identifier,
    )


def overage_reports_queue(*, now: datetime) -> int:
    """Record each customer's new overage and queue its meter event; how many
    reports were made. Nothing while Stripe is not configured."""
    if not is_configured():
        return 0
    with transaction.atomic():
        reports = overage_reports_create(now=now)
        for report in reports:
            _queue(report)
    return len(reports)
