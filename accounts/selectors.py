"""Reads behind the customer dashboard."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from allauth.account.models import EmailAddress

from metering.selectors import UsageSummary, customer_usage_summary, refusals_by_hour, usage_by_hour
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
