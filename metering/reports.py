"""Cost baselines per endpoint, and the margin of each tier at full quota."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from plans.models import QuotaPeriod, SubscriptionStatus, Tier

from .cost import CPU_BUCKETS_MS, UnitPrices
from .models import CPU_BUCKET_PREFIX, CostMetric, EndpointCost, UsageRecord

REPORT_WINDOW = timedelta(days=30)
MARGIN_FLOOR = Decimal(3)  # a tier must earn at least 3x what it costs to serve
PERIODS_PER_MONTH = {
    QuotaPeriod.MINUTE: 30 * 24 * 60,
    QuotaPeriod.HOUR: 30 * 24,
    QuotaPeriod.DAY: 30,
    QuotaPeriod.MONTH: 1,
}


@dataclass(frozen=True)
class EndpointCostSummary:
    endpoint: str
    requests: int
    mean_cpu_ms: Decimal
    p95_cpu_ms: Decimal  # upper edge of the histogram bucket holding the 95th percentile
    mean_kb_out: Decimal
    third_party_calls_per_request: Decimal
    cost_per_1000: Decimal


def _p95_ms(buckets: dict[int, int], requests: int) -> Decimal:
    needed, seen = requests * 0.95, 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= needed:
            edge = CPU_BUCKETS_MS[index] if index < len(CPU_BUCKETS_MS) else CPU_BUCKETS_MS[-1]
            return Decimal(str(edge))
    return Decimal(str(CPU_BUCKETS_MS[-1]))


def endpoint_costs(*, since=None, prices: UnitPrices | None = None) -> list[EndpointCostSummary]:
    prices = prices or UnitPrices.from_settings()
    since = since or timezone.now() - REPORT_WINDOW
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = (
        EndpointCost.objects.filter(hour__gte=since).values("endpoint", "metric").annotate(total=Sum("value"))
    )
    for row in rows:
        totals[row["endpoint"]][row["metric"]] += row["total"]
    summaries = []
    for endpoint, metrics in sorted(totals.items()):
        requests = metrics.get(CostMetric.REQUESTS, 0)
        if not requests:
            continue
        mean_cpu_ms = Decimal(metrics.get(CostMetric.CPU_US, 0)) / 1000 / requests
        mean_kb = Decimal(metrics.get(CostMetric.BYTES_OUT, 0)) / 1024 / requests
        calls = Decimal(metrics.get(CostMetric.THIRD_PARTY_CALLS, 0)) / requests
        buckets = {
            int(metric.removeprefix(CPU_BUCKET_PREFIX)): value
            for metric, value in metrics.items()
            if metric.startswith(CPU_BUCKET_PREFIX)
        }
        per_request = (
            mean_cpu_ms * prices.per_cpu_ms
            + mean_kb * prices.per_kb_out
            + calls * prices.per_third_party_call
        )
        summaries.append(
            EndpointCostSummary(
                endpoint=endpoint,
                requests=requests,
                mean_cpu_ms=mean_cpu_ms,
                p95_cpu_ms=_p95_ms(buckets, requests),
                mean_kb_out=mean_kb,
                third_party_calls_per_request=calls,
                cost_per_1000=per_request * 1000,
            )
        )
    return summaries


@dataclass(frozen=True)
class TierMargin:
    tier: Tier
    monthly_units: int  # the quota over a month
    cost_at_full_quota: Decimal  # per customer per month
    ratio: Decimal | None  # price / cost; None when nothing has been measured
    customers: int
    cost_per_request: Decimal | None = None  # at the tier's endpoint mix; None when unmeasured

    @property
    def is_paid(self) -> bool:
        return self.tier.price > 0

    @property
    def under_floor(self) -> bool:
        return self.is_paid and self.ratio is not None and self.ratio < MARGIN_FLOOR

    @property
    def free_tier_total_cost(self) -> Decimal:
        """What all the tier's customers cost if each uses the whole quota."""
        return self.cost_at_full_quota * self.customers


def _cost_per_request(mix: dict[str, int], costs: dict[str, EndpointCostSummary]) -> Decimal | None:
    """Mean cost of one request at this endpoint mix (requests by endpoint)."""
    measured = {endpoint: n for endpoint, n in mix.items() if endpoint in costs}
    total = sum(measured.values())
    if not total:
        return None
    return sum(costs[e].cost_per_1000 / 1000 * n for e, n in measured.items()) / total


def tier_margins(*, since=None, prices: UnitPrices | None = None) -> list[TierMargin]:
    """Each tier's price against the cost of serving its full quota for a month.

    The endpoint mix is the tier's own billed usage over the window, or all
    measured traffic for a tier with no usage yet.
    """
    since = since or timezone.now() - REPORT_WINDOW
    costs = {summary.endpoint: summary for summary in endpoint_costs(since=since, prices=prices)}
    overall_mix = {endpoint: summary.requests for endpoint, summary in costs.items()}
    usage_by_tier: dict[int, dict[str, int]] = defaultdict(dict)
    for row in (
        UsageRecord.objects.filter(hour__gte=since)
        .values("customer__tier_id", "endpoint")
        .annotate(units=Sum("count"))
    ):
        usage_by_tier[row["customer__tier_id"]][row["endpoint"]] = row["units"]
    margins = []
    # Counted in the same query as the tiers: one query whatever the number of tiers.
    # Django drops Meta.ordering from GROUP BY queries, so it is asked for again.
    tiers = Tier.objects.annotate(
        _customers=Count("customers", filter=~Q(customers__subscription_status=SubscriptionStatus.CANCELED))
    ).order_by(*Tier._meta.ordering)
    for tier in tiers:
        per_request = _cost_per_request(usage_by_tier.get(tier.pk) or overall_mix, costs)
        monthly_units = tier.quota * PERIODS_PER_MONTH[tier.quota_period]
        cost = (per_request or Decimal(0)) * monthly_units
        # Rounded down: a ratio of 2.996 must not read (and pass) as 3.00.
        ratio = (tier.price / cost).quantize(Decimal("0.01"), rounding=ROUND_DOWN) if cost else None
        margins.append(TierMargin(tier, monthly_units, cost, ratio, tier._customers, per_request))
    return margins


def tier_margin_warning(tier: Tier) -> str | None:
    """The admin's warning for a tier priced under the floor, or None."""
    margin = next((m for m in tier_margins() if m.tier.pk == tier.pk), None)
    if margin is None or not margin.under_floor:
        return None
    return (
        f"{tier.name} earns {margin.ratio}x what its full quota costs to serve "
        f"(${margin.cost_at_full_quota:.2f} a month at the measured endpoint mix); "
        f"the floor is {MARGIN_FLOOR}x. Raise the price or lower the quota."
    )
