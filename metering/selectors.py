"""Reads of billable usage: PostgreSQL totals plus what Redis still holds."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django_redis import get_redis_connection

from plans.models import Customer, Tier
from plans.periods import period_bounds

from .keys import REFUSAL_PREFIX, USAGE_PREFIX, pending_key, quota_key, snapshot_key
from .ledger import lock_usage
from .models import FlushedBatch, RefusalRecord, UsageRecord


def pending_usage_fields(customer_id: int) -> dict[str, int]:
    """`u|...` fields not yet in PostgreSQL: the pending hash and an unapplied snapshot."""
    return _pending_fields(customer_id, USAGE_PREFIX)


def pending_refusal_fields(customer_id: int) -> dict[str, int]:
    """`r|<hour>|429` counts not yet in PostgreSQL (check_and_reserve.lua counts
    each refusal as it happens), from the pending hash and an unapplied snapshot."""
    return _pending_fields(customer_id, REFUSAL_PREFIX)


def _pending_fields(customer_id: int, prefix: str) -> dict[str, int]:
    if not settings.REDIS_URL:
        return {}
    client = get_redis_connection("default")
    # MULTI: a snapshot taken between two separate reads would be read twice.
    with client.pipeline(transaction=True) as pipe:
        pipe.hgetall(pending_key(customer_id))
        pipe.hgetall(snapshot_key(customer_id))
        pending, snapshot = pipe.execute()
    batch = snapshot.pop(b"batch", None)
    # A snapshot whose batch is already in PostgreSQL is about to be deleted:
    # counting it too would count it twice.
    if batch is not None and FlushedBatch.objects.filter(batch=batch.decode()).exists():
        snapshot = {}
    fields: dict[str, int] = defaultdict(int)
    wanted = prefix.encode()
    for source in (pending, snapshot):
        for name, value in source.items():
            if name.startswith(wanted):
                fields[name.decode()] += int(value)
    return fields


def pending_units(*, customer_id: int, key_id: int | None = None) -> dict[str, int]:
    """The customer's (or one key's) usage fields not yet in PostgreSQL whose
    count is not zero: billed units, or unbillings of units already flushed."""
    fields = pending_usage_fields(customer_id)
    return {
        name: units
        for name, units in fields.items()
        if units and (key_id is None or name.split("|")[2] == str(key_id))
    }


def _ledger_and_pending(
    customer_id: int, start: datetime, end: datetime, *group_by: str
) -> tuple[list[dict], dict[str, int]]:
    """The usage ledger's units of buckets starting in [start, end), summed by
    `group_by`, and the pending usage fields: exact up to the last settled request."""
    with transaction.atomic():
        lock_usage(customer_id, shared=True)  # no flush commits between the two reads
        stored = list(
            UsageRecord.objects.filter(customer_id=customer_id, hour__gte=start, hour__lt=end)
            .values(*group_by)
            .annotate(units=Sum("count"))
        )
        pending = pending_usage_fields(customer_id)
    return stored, pending


def _parse_usage_field(name: str) -> tuple[datetime, int, str]:
    """`u|<bucket epoch>|<key id>|<endpoint>` -> (bucket, key id, endpoint)."""
    _, bucket, key_id, endpoint = name.split("|", 3)
    return datetime.fromtimestamp(int(bucket), UTC), int(key_id), endpoint


def _usage_by_bucket(customer_id: int, start: datetime, end: datetime) -> dict[datetime, int]:
    """Billable units by bucket (metering.keys.usage_bucket) starting in
    [start, end), exact up to the last settled request."""
    by_bucket: dict[datetime, int] = defaultdict(int)
    stored, pending = _ledger_and_pending(customer_id, start, end, "hour")
    for row in stored:
        by_bucket[row["hour"].astimezone(UTC)] += row["units"]
    for name, units in pending.items():
        bucket = _parse_usage_field(name)[0]
        if start <= bucket < end:
            by_bucket[bucket] += units
    return by_bucket


def usage_by_key_and_endpoint(
    *, customer_id: int, start: datetime, end: datetime
) -> dict[tuple[int, str], int]:
    """Billable units of buckets starting in [start, end) by (key id,
    endpoint), the ledger's and Redis's together; pairs with no units left out."""
    by_pair: dict[tuple[int, str], int] = defaultdict(int)
    stored, pending = _ledger_and_pending(customer_id, start, end, "api_key_id", "endpoint")
    for row in stored:
        by_pair[(row["api_key_id"], row["endpoint"])] += row["units"]
    for name, units in pending.items():
        bucket, key_id, endpoint = _parse_usage_field(name)
        if start <= bucket < end:
            by_pair[(key_id, endpoint)] += units
    return {pair: units for pair, units in by_pair.items() if units}


def usage_by_hour(*, customer_id: int, start: datetime, end: datetime) -> dict[datetime, int]:
    """Billable units by UTC hour from `start` to `end`; a bucket that starts
    inside an hour (at a period's start) is shown under that hour."""
    by_hour: dict[datetime, int] = defaultdict(int)
    for bucket, units in _usage_by_bucket(customer_id, start, end).items():
        by_hour[bucket.replace(minute=0, second=0, microsecond=0)] += units
    return dict(by_hour)


@dataclass(frozen=True)
class UsageInPeriod:
    total: int
    by_day: dict[date, int]


def usage_in_period(*, customer_id: int, start: datetime, end: datetime) -> UsageInPeriod:
    """Billable units of the period [start, end), in total and by UTC day.

    Exact for a period of an hour or more, whose units are in buckets starting
    inside it (metering.keys.usage_bucket). A shorter period counts its whole
    hour, the finest grain its usage is kept at.
    """
    if end - start < timedelta(hours=1):
        start = start.replace(minute=0, second=0, microsecond=0)
    by_day: dict[date, int] = defaultdict(int)
    for bucket, units in _usage_by_bucket(customer_id, start, end).items():
        by_day[bucket.date()] += units
    return UsageInPeriod(total=sum(by_day.values()), by_day=dict(by_day))


@dataclass(frozen=True)
class UsageSummary:
    """A customer's quota period and what they used of it: the usage API's
    body and the dashboard's figures, computed once for both."""

    quota: int
    period_start: datetime
    period_end: datetime
    used: int
    daily: list[tuple[date, int]]  # every day of the period up to today, zeros included

    @property
    def remaining(self) -> int:
        return max(0, self.quota - self.used)


def usage_summary(
    *, customer_id: int, quota: int, period_start: datetime, period_end: datetime, now: datetime
) -> UsageSummary:
    usage = usage_in_period(customer_id=customer_id, start=period_start, end=period_end)
    today = now.astimezone(UTC).date()
    days = [day for day in days_between(period_start, period_end) if day <= today]
    daily = [(day, usage.by_day.get(day, 0)) for day in days]
    return UsageSummary(quota, period_start, period_end, usage.total, daily)


def days_between(start: datetime, end: datetime) -> list[date]:
    days, day = [], start.date()
    while datetime.combine(day, datetime.min.time(), UTC) < end:
        days.append(day)
        day += timedelta(days=1)
    return days


def customer_quota_period(*, customer: Customer, now: datetime) -> tuple[datetime, datetime]:
    """The customer's current quota period [start, end): the same bounds the
    limiter uses (plans.periods.period_bounds)."""
    return period_bounds(
        customer.tier.quota_period, now, customer.current_period_start, customer.current_period_end
    )


def customer_usage_summary(*, customer: Customer, now: datetime) -> UsageSummary:
    """usage_summary for the customer's current quota period."""
    start, end = customer_quota_period(customer=customer, now=now)
    return usage_summary(
        customer_id=customer.pk, quota=customer.quota, period_start=start, period_end=end, now=now
    )


def tier_above(*, tier_slug: str, quota: int) -> Tier | None:
    """The tier to offer a customer on `tier_slug` with `quota` (theirs, an
    override included) who is running out of it: the cheapest public tier open
    to subscriptions that costs more than theirs and gives more quota; None
    when there is none (theirs is the highest, or unknown)."""
    current = Tier.objects.filter(slug=tier_slug).values_list("price", flat=True).first()
    if current is None:
        return None
    higher = Tier.objects.filter(is_public=True, is_active=True, price__gt=current, quota__gt=quota)
    return higher.order_by("price", "display_order", "slug").first()


def refusals_by_hour(*, customer_id: int, start: datetime, end: datetime) -> dict[tuple[datetime, int], int]:
    """Refused API requests by (UTC hour, status), for the hours starting in
    [start, end): PostgreSQL's plus the 429s still in Redis, so a 429 shows
    as soon as it is refused. 402s are counted per process and written every
    few seconds (metering.cost), then moved by the usage flush."""
    refused: dict[tuple[datetime, int], int] = defaultdict(int)
    with transaction.atomic():
        lock_usage(customer_id, shared=True)  # no flush commits between the two reads
        rows = list(
            RefusalRecord.objects.filter(customer_id=customer_id, hour__gte=start, hour__lt=end)
            .values("hour", "status")
            .annotate(refused=Sum("count"))
        )
        pending = pending_refusal_fields(customer_id)
    for row in rows:
        refused[(row["hour"].astimezone(UTC), row["status"])] += row["refused"]
    for name, count in pending.items():
        _, hour, status = name.split("|")
        when = datetime.fromtimestamp(int(hour), UTC)
        if start <= when < end and count:
            refused[(when, int(status))] += count
    return dict(refused)


# The usage reconcile's reads (billing.usage_reconcile): each store on its own,
# over the same hours as usage_by_hour.


def quota_counter(*, customer_id: int, period_start: datetime) -> int | None:
    """The limiter's quota counter of the period starting at `period_start`:
    the units reserved in it. None when there is none (never used, expired
    after the period, or no Redis: the embedded limiter lives in process)."""
    if not settings.REDIS_URL:
        return None
    key = quota_key(customer_id, int(period_start.timestamp()))
    value = get_redis_connection("default").get(key)
    return int(value) if value is not None else None


def pending_usage_in_period(*, customer_id: int, start: datetime, end: datetime) -> int:
    """Billable units of the period still in Redis, not yet flushed."""
    return sum(
        units
        for name, units in pending_usage_fields(customer_id).items()
        if start <= datetime.fromtimestamp(int(name.split("|")[1]), UTC) < end
    )


def ledger_usage_in_period(*, customer_id: int, start: datetime, end: datetime) -> int:
    """Billable units of the period in PostgreSQL's usage ledger."""
    rows = UsageRecord.objects.filter(customer_id=customer_id, hour__gte=start, hour__lt=end)
    return rows.aggregate(units=Sum("count"))["units"] or 0
