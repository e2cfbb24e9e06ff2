"""What a tier change would have done: proposed values replayed over the last
30 days of real usage, before an operator saves them.

Read only. For the tier's current customers (cancelled ones left out, as the
margin report does) it takes their billed usage per hour from the usage ledger
and replays it twice, under today's values and under the proposed ones:

1. Quota. Each customer's hourly units are added up per quota period, in
   order; the units past the quota are overage on a tier that sells it (up to
   the customer's spending cap) and refused (429) past that or on a hard limit.
   A day or hour quota uses its UTC windows. A monthly quota takes the 30 days
   as one month, as the margin report counts a month. A minute quota cannot be
   replayed from hourly data: an hour counts as over only when its units alone
   pass 60 minutes' quota, a lower bound (`quota_exact` is False).
2. Burst (requests per second). Hourly data hides peaks: an hour whose average
   rate alone passes the burst is sure to have been refused, so those
   customer-hours are a lower bound and the rest cannot be judged.
3. Revenue: the flat price times the paying customers (active, trialing, past
   due, as the operator dashboard's MRR counts them) plus their overage.
4. Margin against the cost baselines: price over the cost of the full quota
   for a month at the tier's measured endpoint mix (metering.reports), flagged
   under MARGIN_FLOOR; the overage price against the cost of 1,000 requests.

The usage Redis still holds (under a minute's, until the next flush) is left
out: reading it costs a Redis round trip per customer for a share of 30 days
too small to move any figure. Usage refused today was never billed, so it is
not in the ledger: raising a hard limit shows what the served usage would have
paid, not the demand that was turned away (`refused_429_today` gives its size).
Customer overrides (quota, burst, spending cap) are negotiated deals and stay.
"""

import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from http import HTTPStatus

from django.db.models import Sum

from metering.models import RefusalRecord, UsageRecord
from metering.reports import MARGIN_FLOOR, PERIODS_PER_MONTH, REPORT_WINDOW, tier_margins
from plans.models import Customer, QuotaPeriod, SubscriptionStatus, Tier

# The operator dashboard's MRR counts these (saas.dashboard.REVENUE_STATUSES).
PAYING_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE)
SECONDS_PER_HOUR = 3600
CENT = Decimal("0.01")


@dataclass(frozen=True)
class TierValues:
    """The values a what-if may change; the quota period stays."""

    price: Decimal
    quota: int
    burst: int
    overage_price_per_1000: Decimal | None

    @classmethod
    def of(cls, tier: Tier) -> "TierValues":
        return cls(tier.price, tier.quota, tier.burst, tier.overage_price_per_1000)

    def applied_to(self, tier: Tier) -> Tier:
        """An unsaved copy of `tier` with these values."""
        proposed = copy.copy(tier)
        proposed.price, proposed.quota, proposed.burst = self.price, self.quota, self.burst
        proposed.overage_price_per_1000 = self.overage_price_per_1000
        return proposed


@dataclass(frozen=True)
class Margin:
    cost_at_full_quota: Decimal | None  # a customer's full quota for a month; None: unmeasured
    ratio: Decimal | None  # price / cost, rounded down; None: unmeasured or free
    overage_ratio: Decimal | None  # overage price / cost of 1,000 requests
    served_cost: Decimal | None  # cost of the units served in the window
    is_paid: bool

    @property
    def under_floor(self) -> bool:
        return self.is_paid and self.ratio is not None and self.ratio < MARGIN_FLOOR

    @property
    def overage_under_floor(self) -> bool:
        return self.overage_ratio is not None and self.overage_ratio < MARGIN_FLOOR


@dataclass(frozen=True)
class Outcome:
    """The window replayed under one set of values."""

    values: TierValues
    has_overage: bool
    customers_over_quota: int  # went past their quota in some period
    customers_refused: int  # would have had 429s for the quota (hard limit or spending cap)
    customers_in_overage: int  # would have paid overage
    served_units: int
    refused_units: int
    overage_units: int  # of paying customers: what is billed
    overage_revenue: Decimal
    subscription_revenue: Decimal
    hours_over_burst: int  # customer-hours whose average rate alone passes the burst
    customers_over_burst: int
    margin: Margin

    @property
    def monthly_revenue(self) -> Decimal:
        return self.subscription_revenue + self.overage_revenue


@dataclass(frozen=True)
class WhatIf:
    tier: Tier
    since: datetime
    until: datetime
    customers: int
    paying_customers: int
    used_units: int  # billed in the window by the tier's current customers
    refused_429_today: int  # refused in the window under today's values (burst and quota)
    quota_exact: bool
    cost_per_request: Decimal | None
    current: Outcome
    proposed: Outcome

    @property
    def outcomes(self) -> tuple[Outcome, Outcome]:
        return self.current, self.proposed

    @property
    def revenue_change(self) -> Decimal:
        return self.proposed.monthly_revenue - self.current.monthly_revenue


def _ratio(price: Decimal, cost: Decimal | None) -> Decimal | None:
    # Rounded down, as the margin report does: 2.996 must not read as 3.00.
    if not cost or not price:
        return None
    return (price / cost).quantize(CENT, rounding=ROUND_DOWN)


def _margin(tier: Tier, cost_per_request: Decimal | None, served_units: int) -> Margin:
    if cost_per_request is None:
        return Margin(None, None, None, None, tier.price > 0)
    full_quota = cost_per_request * tier.quota * PERIODS_PER_MONTH[tier.quota_period]
    return Margin(
        cost_at_full_quota=full_quota,
        ratio=_ratio(tier.price, full_quota),
        overage_ratio=_ratio(tier.overage_price_per_1000 or Decimal(0), cost_per_request * 1000),
        served_cost=cost_per_request * served_units,
        is_paid=tier.price > 0,
    )


def _period_of(quota_period: str, since: datetime) -> Callable[[datetime], object]:
    """The quota period an hour's bucket counts in, as a grouping key."""
    if quota_period == QuotaPeriod.DAY:
        return lambda hour: hour.date()
    if quota_period == QuotaPeriod.MONTH:
        return lambda hour: since
    return lambda hour: hour  # an hour, or a minute quota's lower bound


@dataclass
class _Replay:
    over_quota: bool = False
    refused: int = 0
    overage: int = 0
    hours_over_burst: int = 0


def _replay(customer: Customer, hours: dict[datetime, int], period_of, allowance: int) -> _Replay:
    """One customer's hourly units under `customer`'s limits (an unsaved copy
    carrying the tier's values to judge). `allowance`: quota periods per hour
    of data (60 for a minute quota, else 1)."""
    quota = customer.quota * allowance
    if customer.tier.has_overage:
        ceiling = customer.overage_ceiling  # None: no spending cap
        most = None if ceiling is None else quota + (ceiling - customer.quota)
    else:
        most = quota
    replay, used = _Replay(), defaultdict(int)
    for hour in sorted(hours):
        units, period = hours[hour], period_of(hour)
        before, after = used[period], used[period] + units
        used[period] = after
        replay.over_quota |= after > quota
        capped_before, capped_after = (x if most is None else min(x, most) for x in (before, after))
        if customer.tier.has_overage:
            replay.overage += max(0, capped_after - quota) - max(0, capped_before - quota)
        replay.refused += (after - capped_after) - (before - capped_before)
        replay.hours_over_burst += units > customer.burst * SECONDS_PER_HOUR
    return replay


def _outcome(
    tier: Tier,
    customers: list[Customer],
    usage: dict[int, dict[datetime, int]],
    *,
    since: datetime,
    cost_per_request: Decimal | None,
) -> Outcome:
    period_of = _period_of(tier.quota_period, since)
    allowance = 60 if tier.quota_period == QuotaPeriod.MINUTE else 1
    totals = defaultdict(int)
    for customer in customers:
        judged = Customer(
            tier=tier,
            quota_override=customer.quota_override,
            burst_override=customer.burst_override,
            overage_spending_cap=customer.overage_spending_cap,
        )
        hours = usage.get(customer.pk, {})
        replay = _replay(judged, hours, period_of, allowance)
        paying = customer.subscription_status in PAYING_STATUSES
        totals["over_quota"] += replay.over_quota
        totals["refused_customers"] += replay.refused > 0
        totals["refused"] += replay.refused
        totals["served"] += sum(hours.values()) - replay.refused
        totals["overage_customers"] += paying and replay.overage > 0
        totals["overage"] += replay.overage if paying else 0
        totals["burst_hours"] += replay.hours_over_burst
        totals["burst_customers"] += replay.hours_over_burst > 0
        totals["paying"] += paying
    overage_price = tier.overage_price_per_1000 or Decimal(0)
    return Outcome(
        values=TierValues.of(tier),
        has_overage=tier.has_overage,
        customers_over_quota=totals["over_quota"],
        customers_refused=totals["refused_customers"],
        customers_in_overage=totals["overage_customers"],
        served_units=totals["served"],
        refused_units=totals["refused"],
        overage_units=totals["overage"],
        overage_revenue=(overage_price * totals["overage"] / 1000).quantize(CENT),
        subscription_revenue=tier.price * totals["paying"],
        hours_over_burst=totals["burst_hours"],
        customers_over_burst=totals["burst_customers"],
        margin=_margin(tier, cost_per_request, totals["served"]),
    )


def _hourly_usage(ids: list[int], since: datetime, until: datetime) -> dict[int, dict[datetime, int]]:
    """Billed units by customer and UTC hour: one query. A bucket that starts
    inside an hour (at a billing period's start) joins its hour."""
    usage: dict[int, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    rows = (
        UsageRecord.objects.filter(customer_id__in=ids, hour__gte=since, hour__lt=until)
        .values("customer_id", "hour")
        .annotate(units=Sum("count"))
    )
    for row in rows:
        hour = row["hour"].replace(minute=0, second=0, microsecond=0)
        usage[row["customer_id"]][hour] += row["units"]
    return usage


def _refused_429(customer_ids: list[int], since: datetime, until: datetime) -> int:
    refused = RefusalRecord.objects.filter(
        customer_id__in=customer_ids, hour__gte=since, hour__lt=until, status=HTTPStatus.TOO_MANY_REQUESTS
    )
    return refused.aggregate(total=Sum("count"))["total"] or 0


def tier_what_if(*, tier: Tier, proposed: TierValues, now: datetime) -> WhatIf:
    """Today's values and `proposed` replayed over the 30 days before `now`."""
    since = now - REPORT_WINDOW
    customers = list(
        Customer.objects.filter(tier=tier)
        .exclude(subscription_status=SubscriptionStatus.CANCELED)
        .order_by("pk")
    )
    ids = [customer.pk for customer in customers]
    usage = _hourly_usage(ids, since, now)
    margin = next((m for m in tier_margins(since=since) if m.tier.pk == tier.pk), None)
    cost_per_request = margin.cost_per_request if margin is not None else None

    def outcome(values: Tier) -> Outcome:
        return _outcome(values, customers, usage, since=since, cost_per_request=cost_per_request)

    return WhatIf(
        tier=tier,
        since=since,
        until=now,
        customers=len(customers),
        paying_customers=sum(c.subscription_status in PAYING_STATUSES for c in customers),
        used_units=sum(sum(hours.values()) for hours in usage.values()),
        refused_429_today=_refused_429(ids, since, now),
        quota_exact=tier.quota_period != QuotaPeriod.MINUTE,
        cost_per_request=cost_per_request,
        current=outcome(tier),
        proposed=outcome(proposed.applied_to(tier)),
    )
