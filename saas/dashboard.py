"""Reads behind the operator dashboard (/admin/dashboard/).

It brings billing and metering figures together, so it lives with the project
rather than in either app. Each figure is one query whatever the number of
tiers or customers; the cost and margin figures come from
metering.reports.tier_margins, which owns that arithmetic. Usage is what the
flush has moved to the database (Redis may still hold the last minute's).

Revenue (MRR, paying customers) and the top customers by email are read only
for operators with REVENUE_PERMISSION (superusers have it); the listed Stripe
events only for those who may view them in admin. Everyone on the staff sees
usage, refusals, costs and margins.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.models import EventStatus, StripeEvent
from metering.models import RefusalRecord, UsageRecord
from metering.reports import TierMargin, tier_margins
from metering.selectors import days_between
from plans.models import Customer, SubscriptionStatus

WINDOW_DAYS = (7, 30, 90)
DEFAULT_WINDOW_DAYS = 30
TOP_CUSTOMERS = 10
EVENTS_SHOWN = 20
# Subscriptions that bring revenue this month; past due is still owed and
# within its grace period keeps API access, so it counts until Stripe gives up.
REVENUE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE)
WEBHOOK_ATTENTION_STATUSES = (EventStatus.FAILED, EventStatus.RECEIVED)
REVENUE_PERMISSION = "plans.view_revenue"
EVENTS_PERMISSION = "billing.view_stripeevent"


@dataclass(frozen=True)
class Window:
    """Whole UTC days ending today: `days` of them, from `start` (midnight)."""

    days: int
    start: datetime
    end: datetime

    @property
    def dates(self) -> list[date]:
        return days_between(self.start, self.end)


def dashboard_window(*, days: int, now: datetime | None = None) -> Window:
    now = now or timezone.now()
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return Window(days=days, start=today - timedelta(days=days - 1), end=now)


def usage_by_day_and_tier(*, since: datetime) -> dict[tuple[date, int], int]:
    """Billed units by (UTC day, tier id)."""
    rows = (
        UsageRecord.objects.filter(hour__gte=since)
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("day", "customer__tier_id")
        .annotate(units=Sum("count"))
    )
    return {(row["day"], row["customer__tier_id"]): row["units"] for row in rows}


@dataclass(frozen=True)
class CustomerUsage:
    customer_id: int
    email: str
    tier_name: str
    units: int


def top_customers_by_usage(*, since: datetime, limit: int = TOP_CUSTOMERS) -> list[CustomerUsage]:
    rows = (
        UsageRecord.objects.filter(hour__gte=since)
        .values("customer_id", "customer__user__email", "customer__tier__name")
        .annotate(units=Sum("count"))
        .order_by("-units", "customer_id")[:limit]
    )
    return [
        CustomerUsage(
            row["customer_id"], row["customer__user__email"], row["customer__tier__name"], row["units"]
        )
        for row in rows
    ]


def refusals_by_tier(*, since: datetime) -> dict[int, dict[int, int]]:
    """Refused requests by tier id, then by status (429 or 402)."""
    by_tier: dict[int, dict[int, int]] = defaultdict(dict)
    rows = (
        RefusalRecord.objects.filter(
            hour__gte=since, status__in=(HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.PAYMENT_REQUIRED)
        )
        .values("customer__tier_id", "status")
        .annotate(refused=Sum("count"))
    )
    for row in rows:
        by_tier[row["customer__tier_id"]][row["status"]] = row["refused"]
    return dict(by_tier)


@dataclass(frozen=True)
class TierRevenue:
    paying_customers: int
    mrr: Decimal


def mrr_by_tier() -> dict[int, TierRevenue]:
    """Monthly recurring revenue by tier id: each tier's flat monthly price
    summed over its customers whose subscription brings revenue."""
    rows = (
        Customer.objects.filter(subscription_status__in=REVENUE_STATUSES)
        .values("tier_id")
        .annotate(paying=Count("id"), mrr=Sum("tier__price"))
    )
    return {row["tier_id"]: TierRevenue(row["paying"], row["mrr"]) for row in rows}


@dataclass(frozen=True)
class WebhookHealth:
    failed: int
    waiting: int
    events: list  # the latest StripeEvent rows that failed or still wait, newest first


def webhooks_needing_attention(*, limit: int = EVENTS_SHOWN) -> WebhookHealth:
    """Stripe events that failed or are still waiting to be processed (two queries:
    the counts, and the latest rows; none of those with `limit` 0)."""
    counts = StripeEvent.objects.aggregate(
        failed=Count("pk", filter=Q(status=EventStatus.FAILED)),
        waiting=Count("pk", filter=Q(status=EventStatus.RECEIVED)),
    )
    events = []
    if limit:
        events = list(
            StripeEvent.objects.filter(status__in=WEBHOOK_ATTENTION_STATUSES)
            .only("stripe_id", "type", "status", "error", "created_at")
            .order_by("-created_at", "-pk")[:limit]
        )
    return WebhookHealth(failed=counts["failed"], waiting=counts["waiting"], events=events)


def _percent(part: int, whole: int) -> float | None:
    return 100 * part / whole if whole else None


@dataclass(frozen=True)
class TierFigures:
    margin: TierMargin  # .tier, cost at full quota, price/cost ratio, under_floor
    units: int  # billed in the window
    refused_429: int
    refused_402: int
    revenue: TierRevenue | None  # None: not shown to this operator

    @property
    def tier(self):
        return self.margin.tier

    @property
    def attempts(self) -> int:
        """Requests that were billed or refused: the rates' denominator."""
        return self.units + self.refused_429 + self.refused_402

    @property
    def percent_429(self) -> float | None:
        return _percent(self.refused_429, self.attempts)

    @property
    def percent_402(self) -> float | None:
        return _percent(self.refused_402, self.attempts)

    @property
    def served_cost(self) -> Decimal | None:
        """Estimated cost of the units billed in the window, at the tier's endpoint mix."""
        per_request = self.margin.cost_per_request
        return None if per_request is None else per_request * self.units


@dataclass(frozen=True)
class Dashboard:
    window: Window
    tiers: list[TierFigures]
    usage_chart: dict  # Chart.js data: {"labels": [...], "datasets": [{"label", "data"}]}
    top_customers: list[CustomerUsage]
    webhooks: WebhookHealth
    shows_revenue: bool = True  # MRR, paying and top customers were read
    shows_events: bool = True  # the Stripe events needing attention were listed

    @property
    def mrr_by_currency(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for figures in self.tiers:
            if figures.revenue is not None:
                totals[figures.tier.currency] += figures.revenue.mrr
        return dict(totals)

    @property
    def units(self) -> int:
        return sum(figures.units for figures in self.tiers)


def _usage_chart(window: Window, margins: list[TierMargin], usage: dict[tuple[date, int], int]) -> dict:
    dates = window.dates
    return {
        "labels": [day.isoformat() for day in dates],
        "datasets": [
            {"label": m.tier.name, "data": [usage.get((day, m.tier.pk), 0) for day in dates]} for m in margins
        ],
    }


def operator_dashboard(
    *,
    days: int = DEFAULT_WINDOW_DAYS,
    now: datetime | None = None,
    revenue: bool = True,
    events: bool = True,
) -> Dashboard:
    """Every figure of the operator dashboard for the last `days` UTC days;
    without `revenue` no MRR and no customer, without `events` no Stripe event
    (their counts stay), none of them even read."""
    window = dashboard_window(days=days, now=now)
    margins = tier_margins(since=window.start)  # also the list of tiers, in display order
    usage = usage_by_day_and_tier(since=window.start)
    refusals = refusals_by_tier(since=window.start)
    revenue_by_tier = mrr_by_tier() if revenue else {}
    no_revenue = TierRevenue(0, Decimal(0)) if revenue else None  # a tier nobody pays for, or hidden
    units_by_tier: dict[int, int] = defaultdict(int)
    for (_, tier_id), units in usage.items():
        units_by_tier[tier_id] += units
    tiers = [
        TierFigures(
            margin=m,
            units=units_by_tier[m.tier.pk],
            refused_429=refusals.get(m.tier.pk, {}).get(HTTPStatus.TOO_MANY_REQUESTS, 0),
            refused_402=refusals.get(m.tier.pk, {}).get(HTTPStatus.PAYMENT_REQUIRED, 0),
            revenue=revenue_by_tier.get(m.tier.pk, no_revenue),
        )
        for m in margins
    ]
    return Dashboard(
        window=window,
        tiers=tiers,
        usage_chart=_usage_chart(window, margins, usage),
        top_customers=top_customers_by_usage(since=window.start) if revenue else [],
        webhooks=webhooks_needing_attention(limit=EVENTS_SHOWN if events else 0),
        shows_revenue=revenue,
        shows_events=events,
    )
