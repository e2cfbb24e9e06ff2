"""Reads behind the customer dashboard."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from allauth.account.models import EmailAddress

from apikeys.models import APIKey
from metering.selectors import (
    UsageSummary,
    customer_quota_period,
    customer_usage_summary,
    refusals_by_hour,
    usage_by_hour,
    usage_by_key_and_endpoint,
)
from plans.models import Customer

HOURS_SHOWN = 24
TOO_MANY_REQUESTS = 429


def email_verified(user) -> bool:
    return EmailAddress.objects.filter(user=user, verified=True).exists()


@dataclass(frozen=True)
class Series:
    """One chart: a label per bucket, billed requests and 429s per bucket."""

    labels: list[str]
    used: list[int]
    refused: list[int]

    def as_json(self) -> dict:
        return {"labels": self.labels, "used": self.used, "refused": self.refused}


@dataclass(frozen=True)
class DashboardUsage:
    summary: UsageSummary
    daily: Series  # the quota period, day by day up to today
    hourly: Series  # the last 24 UTC hours, this one included

    @property
    def percent(self) -> int:
        return min(100, self.summary.used * 100 // self.summary.quota)

    @property
    def refused_in_period(self) -> int:
        return sum(self.daily.refused)

    @property
    def refused_last_24h(self) -> int:
        return sum(self.hourly.refused)


def _day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def dashboard_usage(*, customer: Customer, now: datetime) -> DashboardUsage:
    """Usage this quota period (as the usage API reports it) and in the last
    24 hours, with the 429s refused in each bucket."""
    summary = customer_usage_summary(customer=customer, now=now)
    this_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [this_hour - timedelta(hours=back) for back in range(HOURS_SHOWN - 1, -1, -1)]
    used_by_hour = usage_by_hour(customer_id=customer.pk, start=hours[0], end=now)
    period_hour = summary.period_start.replace(minute=0, second=0, microsecond=0)
    refusals = refusals_by_hour(customer_id=customer.pk, start=min(period_hour, hours[0]), end=now)
    refused_by_day: dict[date, int] = {}
    for (hour, status), count in refusals.items():
        if status == TOO_MANY_REQUESTS and hour >= period_hour:
            refused_by_day[hour.date()] = refused_by_day.get(hour.date(), 0) + count
    daily = Series(
        labels=[_day_label(day) for day, _ in summary.daily],
        used=[used for _, used in summary.daily],
        refused=[refused_by_day.get(day, 0) for day, _ in summary.daily],
    )
    hourly = Series(
        labels=[f"{hour:%H}:00" for hour in hours],
        used=[used_by_hour.get(hour, 0) for hour in hours],
        refused=[refusals.get((hour, TOO_MANY_REQUESTS), 0) for hour in hours],
    )
    return DashboardUsage(summary=summary, daily=daily, hourly=hourly)


@dataclass(frozen=True)
class KeyEndpointUsage:
    api_key: APIKey
    endpoint: str
    requests: int


@dataclass(frozen=True)
class KeysUsage:
    """Billable requests by key and endpoint in the customer's quota period."""

    period_start: datetime
    period_end: datetime
    rows: list[KeyEndpointUsage]  # by key name, then endpoint


def keys_usage(*, customer: Customer, now: datetime) -> KeysUsage:
    start, end = customer_quota_period(customer=customer, now=now)
    by_pair = usage_by_key_and_endpoint(customer_id=customer.pk, start=start, end=end)
    keys = APIKey.objects.filter(customer=customer).in_bulk({key_id for key_id, _ in by_pair})
    rows = [
        KeyEndpointUsage(api_key=keys[key_id], endpoint=endpoint, requests=requests)
        for (key_id, endpoint), requests in by_pair.items()
        if key_id in keys
    ]
    rows.sort(key=lambda row: (row.api_key.name.casefold(), row.api_key.pk, row.endpoint))
    return KeysUsage(period_start=start, period_end=end, rows=rows)
