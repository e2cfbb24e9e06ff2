"""The three-way usage reconcile: Redis (live), PostgreSQL (the ledger), Stripe (billed).

For each customer and quota period with any usage:

- counter: the limiter's quota counter reserves every admitted unit of the
  period, so it equals the ledger (flushed) plus the pending usage (not yet
  flushed, in Redis).
- reported overage: the OverageReport rows of the period sent to Stripe. For
  a closed period it equals the overage the ledger implies
  (Customer.overage_units: units over the quota, capped by the spending cap).
- Stripe overage: what the Billing Meter recorded for the customer over the
  period; it equals the reported overage.

Past periods are the ones subscription_apply recorded as they closed
(ClosedPeriod: their own bounds and limits); a customer who never had one
(the free tier's calendar months) has them worked out from the tier.

A column that cannot be read is None and not compared: no counter (never
made, expired after its period, a per-minute quota, or no Redis), expected
overage while the period is open or off an overage tier, Stripe not configured
or a customer Stripe does not know. Each run is kept as a UsageReconcileRun.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import Sum

from metering.selectors import ledger_usage_in_period, pending_usage_in_period, quota_counter
from plans.models import Customer, QuotaPeriod
from plans.periods import add_months, period_bounds

from .gateway import meter_usage_total, overage_meter_id
from .models import ClosedPeriod, OverageReport, UsageReconcileRun
from .stripe_api import is_configured

CURRENT, PREVIOUS = "current", "previous"
# A period's last hour is reported by the hourly beat REPORT_DELAY after the
# period ends, then sent: before this, its expected overage is still on its way.
CLOSED_AFTER = timedelta(hours=2)
# Usage is stored by the hour: a shorter period's counter has no ledger to match.
SHORTEST_COUNTED_PERIOD = timedelta(hours=1)


@dataclass(frozen=True)
class UsageRow:
    customer_id: int
    customer: str
    period_start: datetime
    period_end: datetime
    counter: int | None
    pending: int
    ledger: int
    expected_overage: int | None
    reported_overage: int
    stripe_overage: int | None

    @property
    def drifts(self) -> list[str]:
        """The columns that disagree: counter, overage, stripe."""
        found = []
        if self.counter is not None and self.counter != self.ledger + self.pending:
            found.append("counter")
        if self.expected_overage is not None and self.expected_overage != self.reported_overage:
            found.append("overage")
        if self.stripe_overage is not None and self.stripe_overage != self.reported_overage:
            found.append("stripe")
        return found

    @property
    def is_idle(self) -> bool:
        figures = (self.counter, self.pending, self.ledger, self.reported_overage, self.stripe_overage)
        return not any(figures)

    def as_record(self) -> dict:
        record = asdict(self)
        record.update(
            period_start=self.period_start.isoformat(),
            period_end=self.period_end.isoformat(),
            drifts=self.drifts,
        )
        return record


@dataclass(frozen=True)
class UsageReconcileResult:
    run: UsageReconcileRun
    rows: list[UsageRow]

    @property
    def drifting(self) -> list[UsageRow]:
        return [row for row in self.rows if row.drifts]


def period_of(
    customer: Customer, period: str | datetime, now: datetime
) -> tuple[datetime, datetime, ClosedPeriod | None]:
    """[start, end) of the customer's quota period, and its ClosedPeriod when
    it closed: the current one, the previous one, or the one containing a
    given moment."""

    def bounds(moment: datetime) -> tuple[datetime, datetime]:
        start, end = customer.current_period_start, customer.current_period_end
        return period_bounds(customer.tier.quota_period, moment, start, end)

    current_start, current_end = bounds(now)
    if period == CURRENT:
        return current_start, current_end, None
    # Whole past periods only: a tier's part of the current period closes too.
    closed = ClosedPeriod.objects.filter(customer=customer, end__lte=current_start).order_by("-end", "start")
    if isinstance(period, datetime):
        if period >= current_start:
            return *bounds(period), None
        found = closed.filter(start__lte=period, end__gt=period).first()
        return (found.start, found.end, found) if found else (*bounds(period), None)
    found = closed.first()
    if found is not None:
        return found.start, found.end, found
    billing_start = customer.current_period_start
    if customer.tier.quota_period == QuotaPeriod.MONTH and billing_start and current_start <= billing_start:
        # Before the stored billing period, period_bounds falls back to calendar
        # months: the previous billing month is one month back from the anchor.
        return add_months(current_start, -1), current_start, None
    return *bounds(current_start - timedelta(microseconds=1)), None


def _reported_overage(customer: Customer, start: datetime, end: datetime) -> int:
    # The same hours overage.py counts as the period's.
    sent = OverageReport.objects.filter(
        customer=customer, hour__gte=start, hour__lt=end, reported_at__isnull=False
    )
    return sent.aggregate(units=Sum("units"))["units"] or 0


def _stripe_overage(customer: Customer, meter_id: str | None, start: datetime, end: datetime) -> int | None:
    if not customer.stripe_customer_id:
        return None
    if meter_id is None:
        return 0  # no meter yet: Stripe recorded nothing
    # Stripe takes whole minutes: the period widened to them.
    start_s, end_s = int(start.timestamp()) // 60 * 60, -(-int(end.timestamp()) // 60) * 60
    return meter_usage_total(
        meter_id=meter_id, stripe_customer_id=customer.stripe_customer_id, start=start_s, end=end_s
    )


def usage_row(
    customer: Customer,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    meter_id: str | None,
    stripe: bool,
    closed: ClosedPeriod | None = None,
) -> UsageRow:
    """One customer period, each store read on its own; priced with the limits
    it closed with (`closed`), else the customer's."""
    counter = None
    if end - start >= SHORTEST_COUNTED_PERIOD:
        counter = quota_counter(customer_id=customer.pk, period_start=start)
    pending = pending_usage_in_period(customer_id=customer.pk, start=start, end=end)
    ledger = ledger_usage_in_period(customer_id=customer.pk, start=start, end=end)
    settled = now >= end + CLOSED_AFTER
    if closed is not None:
        billed, overage_units = (
            closed.overage_billed and bool(customer.stripe_customer_id),
            closed.overage_units,
        )
    else:
        billed = customer.tier.has_overage and bool(customer.stripe_customer_id)
        overage_units = customer.overage_units
    return UsageRow(
        customer_id=customer.pk,
        customer=str(customer),
        period_start=start,
        period_end=end,
        counter=counter,
        pending=pending,
        ledger=ledger,
        expected_overage=overage_units(ledger) if settled and billed else None,
        reported_overage=_reported_overage(customer, start, end),
        stripe_overage=_stripe_overage(customer, meter_id, start, end) if stripe else None,
    )


def _measured(customer, start, end, **options) -> UsageRow:
    row = usage_row(customer, start, end, **options)
    if row.drifts:
        # Once more: a flush or a request in flight between two reads shows as
        # drift for an instant; real drift is still there a moment later.
        row = usage_row(customer, start, end, **options)
    return row


def usage_reconcile(*, now: datetime, periods: Sequence[str | datetime] = (PREVIOUS, CURRENT)):
    """Compare every customer's usage in the given periods across Redis,
    PostgreSQL and Stripe; record the run. Stripe's column only when it is
    configured."""
    stripe = is_configured()
    options = {"now": now, "stripe": stripe, "meter_id": overage_meter_id() if stripe else None}
    rows, seen = [], set()
    for customer in Customer.objects.select_related("tier", "user").order_by("pk"):
        for period in periods:
            start, end, closed = period_of(customer, period, now)
            if (customer.pk, start) in seen:
                continue
            seen.add((customer.pk, start))
            row = _measured(customer, start, end, closed=closed, **options)
            if not row.is_idle:
                rows.append(row)
    drifting = [row.as_record() for row in rows if row.drifts]
    run = UsageReconcileRun.objects.create(
        ran_at=now,
        periods=", ".join(p.isoformat() if isinstance(p, datetime) else p for p in periods),
        rows_checked=len(rows),
        drifting_rows=len(drifting),
        stripe_checked=stripe,
        drift=drifting,
    )
    return UsageReconcileResult(run, rows)
