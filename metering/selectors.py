"""Reads of billable usage: PostgreSQL totals plus what Redis still holds."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import TruncDate

from .limiter import pending_key
from .models import FlushedBatch, UsageRecord
from .usage import snapshot_key


def _pending_usage_fields(customer_id: int) -> dict[str, int]:
    """`u|...` fields not yet in PostgreSQL: the pending hash and an unapplied snapshot."""
    if not settings.REDIS_URL:
        return {}
    from django_redis import get_redis_connection

    client = get_redis_connection("default")
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(pending_key(customer_id))
        pipe.hgetall(snapshot_key(customer_id))
        pending, snapshot = pipe.execute()
    batch = snapshot.pop(b"batch", None)
    # A snapshot whose batch is already in PostgreSQL is about to be deleted:
    # counting it too would count it twice.
    if batch is not None and FlushedBatch.objects.filter(batch=batch.decode()).exists():
        snapshot = {}
    fields: dict[str, int] = defaultdict(int)
    for source in (pending, snapshot):
        for name, value in source.items():
            if name.startswith(b"u|"):
                fields[name.decode()] += int(value)
    return fields


@dataclass(frozen=True)
class UsageInPeriod:
    total: int
    by_day: dict[date, int]


def usage_in_period(*, customer_id: int, start: datetime, end: datetime) -> UsageInPeriod:
    """Billable units from `start` to `end`, exact up to the last settled request.

    Usage is kept by UTC hour, so a period that starts inside an hour (a
    billing anchor) counts that whole hour.
    """
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    by_day: dict[date, int] = defaultdict(int)
    stored = (
        UsageRecord.objects.filter(customer_id=customer_id, hour__gte=first_hour, hour__lt=end)
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("day")
        .annotate(units=Sum("count"))
    )
    for row in stored:
        by_day[row["day"]] += row["units"]
    for name, units in _pending_usage_fields(customer_id).items():
        hour = datetime.fromtimestamp(int(name.split("|")[1]), UTC)
        if first_hour <= hour < end:
            by_day[hour.date()] += units
    return UsageInPeriod(total=sum(by_day.values()), by_day=dict(by_day))


def days_between(start: datetime, end: datetime) -> list[date]:
    days, day = [], start.date()
    while datetime.combine(day, datetime.min.time(), UTC) < end:
        days.append(day)
        day += timedelta(days=1)
    return days
