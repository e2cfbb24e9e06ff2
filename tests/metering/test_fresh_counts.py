"""Refusals (429s) and a key's last use reach the dashboard within seconds,
without a later request to the same process (issue 16, item 4)."""

import re
import time
from datetime import UTC, datetime

import pytest
from django.test import Client
from django_redis import get_redis_connection

from apikeys.models import APIKey
from metering.flush import flush_usage
from metering.keys import hour_of, pending_key
from metering.limiter import Limits, MemoryLimiter, RedisLimiter
from metering.models import RefusalRecord
from metering.selectors import refusals_by_hour
from plans.periods import period_bounds

ECHO = "/api/v1/echo"


def dashboard_text(customer) -> str:
    client = Client()
    client.force_login(customer.user)
    page = client.get("/dashboard/").content.decode()
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def refused_last_24h(customer) -> int:
    found = re.search(r"Refused \(429\) last 24 h (\d+)", dashboard_text(customer))
    return int(found.group(1))


def month_limits(customer_id: int, *, quota: int = 1_000, burst: int = 5) -> Limits:
    start, end = period_bounds("month", datetime.now(UTC))
    return Limits(customer_id=customer_id, burst=burst, quota=quota, period_start=start, period_end=end)


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def test_four_429s_show_on_the_dashboard_at_once(customer, key_client, clock):
    statuses = [key_client.get(ECHO).status_code for _ in range(9)]
    assert statuses == [200] * 5 + [429] * 4
    assert refused_last_24h(customer) == 4


def test_429s_still_in_redis_count_once_before_and_after_the_flush(customer, key_client, clock):
    for _ in range(7):
        key_client.get(ECHO)
    assert refusals_by_hour(customer_id=customer.pk, start=this_hour(), end=datetime.now(UTC)) == {
        (this_hour(), 429): 2
    }
    flush_usage()
    assert RefusalRecord.objects.get(customer=customer, status=429).count == 2
    assert get_redis_connection("default").hgetall(pending_key(customer.pk)) == {}
    assert refused_last_24h(customer) == 2


def test_a_refusal_is_counted_by_the_check_itself_in_the_customers_pending_hash(redis_layout, customer):
    client = get_redis_connection("default")
    limiter, limits = RedisLimiter(client), month_limits(customer.pk, burst=1)
    now_ms = int(time.time() * 1000)
    assert limiter.check(limits, now_ms=now_ms).admitted
    assert not limiter.check(limits, now_ms=now_ms).admitted
    assert not limiter.check(limits, now_ms=now_ms).admitted
    assert client.hget(pending_key(customer.pk), f"r|{hour_of(now_ms)}|429") == b"2"


def test_an_admitted_check_writes_no_refusal(customer):
    client = get_redis_connection("default")
    RedisLimiter(client).check(month_limits(customer.pk), now_ms=int(time.time() * 1000))
    assert not [name for name in client.hkeys(pending_key(customer.pk)) if name.startswith(b"r|")]


def test_the_embedded_limiter_records_a_refusal_at_once(customer):
    limiter, limits, now_ms = MemoryLimiter(), month_limits(customer.pk, burst=1), int(time.time() * 1000)
    limiter.check(limits, now_ms=now_ms)
    limiter.check(limits, now_ms=now_ms)
    assert RefusalRecord.objects.get(customer=customer, status=429).count == 1


@pytest.mark.django_db(transaction=True)  # the writer thread sees only committed rows
def test_a_keys_last_use_is_written_within_seconds_without_another_request(key_client, api_key):
    assert key_client.get(ECHO).status_code == 200
    deadline = time.monotonic() + 10
    while APIKey.objects.get(pk=api_key.api_key.pk).last_used_at is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert APIKey.objects.get(pk=api_key.api_key.pk).last_used_at is not None


def test_the_dashboard_no_longer_promises_counts_within_about_a_minute(customer):
    assert "within about a minute" not in dashboard_text(customer)
