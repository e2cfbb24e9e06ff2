"""Quota periods: the window a request's quota units count against.

Minute, hour and day are UTC calendar windows. A month follows the customer's
billing period (Stripe's current_period_start/end) and, while they have none,
the calendar month. Pure functions: the caller passes the time in.
"""

import calendar
from datetime import UTC, datetime, timedelta

from plans.models import QuotaPeriod

FIXED_LENGTHS = {
    QuotaPeriod.MINUTE: timedelta(minutes=1),
    QuotaPeriod.HOUR: timedelta(hours=1),
    QuotaPeriod.DAY: timedelta(days=1),
}


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` shifted by whole months, the day clamped to the month's end
    (Jan 31 + 1 month = Feb 28/29), as Stripe does for billing anchors."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _anchored_month(now: datetime, anchor: datetime) -> tuple[datetime, datetime]:
    """The monthly period containing `now`, counted in whole months from `anchor`."""
    months = (now.year - anchor.year) * 12 + (now.month - anchor.month)
    start = add_months(anchor, months)
    if start > now:
        months -= 1
        start = add_months(anchor, months)
    return start, add_months(anchor, months + 1)


def _anchor(billing_start: datetime, billing_end: datetime | None) -> datetime:
    """The stored boundary whose day of the month is the billing anchor's.

    A boundary clamped to a short month's end has lost the anchor's day: from
    [Feb 29, Mar 31) Stripe goes on to Apr 30, not Apr 29. Counting from the
    later day keeps our guess on Stripe's boundary, so the quota counter (keyed
    by the period's start) is not reset when the renewal webhook arrives.
    """
    if billing_end is not None and billing_end.astimezone(UTC).day > billing_start.day:
        return billing_end.astimezone(UTC)
    return billing_start


def period_bounds(
    period: str,
    now: datetime,
    billing_start: datetime | None = None,
    billing_end: datetime | None = None,
) -> tuple[datetime, datetime]:
    """[start, end) of the quota period that contains `now` (aware, UTC)."""
    now = now.astimezone(UTC)
    if period in FIXED_LENGTHS:
        length = FIXED_LENGTHS[period]
        start = datetime.fromtimestamp(
            now.timestamp() // length.total_seconds() * length.total_seconds(), UTC
        )
        return start, start + length
    if billing_start is not None and billing_end is not None and billing_start <= now < billing_end:
        return billing_start.astimezone(UTC), billing_end.astimezone(UTC)
    if billing_start is not None and billing_start <= now:
        # The stored period has ended (a renewal webhook not yet applied): keep
        # counting whole months from the anchor rather than resetting to a
        # calendar month, so the boundary does not move under the customer.
        return _anchored_month(now, _anchor(billing_start.astimezone(UTC), billing_end))
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, add_months(start, 1)
