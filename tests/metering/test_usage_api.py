"""GET /api/v1/usage: the calling customer's quota and billable usage this period."""

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from apikeys.context import customer_key_contexts, invalidate_key_contexts, key_contexts
from apikeys.services import api_key_create
from metering.flush import flush_usage
from metering.keys import hour_of, usage_field
from metering.limiter import Limits, get_limiter
from metering.models import UsageRecord
from plans.models import Customer, Tier
from tests.utils import utc

ECHO = "/api/v1/echo"
USAGE = "/api/v1/usage"
TOO_LONG = {"msg": "x" * 1001}


def usage(client) -> dict:
    response = client.get(USAGE)
    assert response.status_code == 200, response.json()
    return response.json()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def month_start() -> datetime:
    return this_hour().replace(day=1, hour=0)


def record(customer, api_key, hour: datetime, count: int) -> None:
    UsageRecord.objects.create(
        customer=customer, api_key=api_key.api_key, endpoint="api:echo", hour=hour, count=count
    )


def billing_period(customer, start: datetime, end: datetime) -> None:
    """Give the customer a billing period before any request loads its key context."""
    Customer.objects.filter(pk=customer.pk).update(current_period_start=start, current_period_end=end)


def bill_pending_at(api_key, when: datetime) -> None:
    """One request admitted and billed at `when`, as the throttle does: pending
    in Redis under that hour."""
    limits = Limits(
        customer_id=api_key.api_key.customer_id,
        burst=1000,
        quota=1000,
        period_start=when - timedelta(days=1),
        period_end=when + timedelta(days=1),
    )
    now_ms = int(when.timestamp() * 1000)
    field = usage_field(hour_of(now_ms), api_key.api_key.pk, "api:echo")
    assert get_limiter().check(limits, now_ms=now_ms, bill_field=field).admitted


def test_it_answers_every_field(key_client):
    assert set(usage(key_client)) == {
        "tier",
        "quota",
        "quota_period",
        "period_start",
        "period_end",
        "used",
        "remaining",
        "burst",
        "daily",
        "bill",
    }


def test_it_describes_the_customers_tier(key_client):
    body = usage(key_client)
    assert (body["tier"], body["quota"], body["quota_period"], body["burst"]) == ("free", 1000, "month", 5)


def test_it_reports_the_customers_own_limits(key_client, customer):
    Customer.objects.filter(pk=customer.pk).update(quota_override=1234, burst_override=50)
    body = usage(key_client)
    assert (body["quota"], body["burst"]) == (1234, 50)


def test_a_customer_without_a_billing_period_gets_the_calendar_month(key_client):
    body = usage(key_client)
    end = (month_start() + timedelta(days=32)).replace(day=1)
    assert (moment(body["period_start"]), moment(body["period_end"])) == (month_start(), end)


def test_a_customer_with_a_billing_period_gets_that_period(key_client, customer):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3, hours=5)
    billing_period(customer, start, start + timedelta(days=30))
    body = usage(key_client)
    assert (moment(body["period_start"]), moment(body["period_end"])) == (start, start + timedelta(days=30))


def test_a_request_without_a_key_gets_401(api_client):
    response = api_client.get(USAGE)
    assert (response.status_code, response["WWW-Authenticate"][:6]) == (401, "Bearer")


def test_a_fresh_customer_has_used_nothing(key_client):
    body = usage(key_client)
    assert (body["used"], body["remaining"]) == (0, 1000)


def test_used_is_exact_the_moment_after_a_request(key_client):
    key_client.get(ECHO)
    key_client.get(ECHO)
    body = usage(key_client)
    assert (body["used"], body["remaining"]) == (2, 998)


def test_the_usage_api_does_not_count_itself(key_client):
    usage(key_client)
    assert usage(key_client)["used"] == 0


def test_used_is_the_same_after_a_flush_and_a_restart(key_client):
    for _ in range(3):
        key_client.get(ECHO)
    flush_usage()
    key_contexts.clear()
    assert usage(key_client)["used"] == 3


def test_used_adds_the_database_and_what_redis_still_holds(key_client, customer, api_key):
    record(customer, api_key, this_hour(), 7)
    key_client.get(ECHO)
    assert usage(key_client)["used"] == 8


def test_used_leaves_out_usage_before_the_period(key_client, customer, api_key):
    record(customer, api_key, month_start() - timedelta(hours=1), 7)
    assert usage(key_client)["used"] == 0


def test_used_leaves_out_other_customers(key_client, other_customer):
    bob_key = api_key_create(customer=other_customer, name="bob")
    record(other_customer, bob_key, this_hour(), 7)
    assert usage(key_client)["used"] == 0


def test_remaining_never_goes_below_zero(key_client, customer, api_key):
    Tier.objects.filter(slug="free").update(overage_price_per_1000=Decimal("1.00"))
    Customer.objects.filter(pk=customer.pk).update(quota_override=5)
    record(customer, api_key, this_hour(), 7)
    body = usage(key_client)
    assert (body["used"], body["remaining"]) == (7, 0)


def test_a_customer_whose_quota_is_used_up_can_still_read_their_usage(key_client, customer):
    Customer.objects.filter(pk=customer.pk).update(quota_override=2)
    key_client.get(ECHO)
    key_client.get(ECHO)
    assert usage(key_client)["remaining"] == 0


def test_a_customer_over_a_downgraded_quota_can_still_read_their_usage(
    key_client, customer, django_capture_on_commit_callbacks
):
    for _ in range(3):
        key_client.get(ECHO)
    with django_capture_on_commit_callbacks(execute=True):
        Customer.objects.filter(pk=customer.pk).update(quota_override=2)
        invalidate_key_contexts(customer_key_contexts([customer.pk]))
    assert key_client.get(ECHO).status_code == 429  # the downgrade is in force
    assert key_client.get(USAGE).status_code == 200


def test_daily_lists_every_day_of_the_period_up_to_today(key_client):
    days = [entry["date"] for entry in usage(key_client)["daily"]]
    today = datetime.now(UTC).date()
    assert days == [str(today.replace(day=day)) for day in range(1, today.day + 1)]


def test_daily_puts_usage_on_its_utc_day(key_client, customer, api_key):
    start = this_hour() - timedelta(days=2)
    billing_period(customer, start, start + timedelta(days=30))
    record(customer, api_key, start, 4)
    record(customer, api_key, start + timedelta(days=1), 6)
    key_client.get(ECHO)
    days = [start.date(), (start + timedelta(days=1)).date(), datetime.now(UTC).date()]
    assert usage(key_client)["daily"] == [
        {"date": str(days[0]), "used": 4},
        {"date": str(days[1]), "used": 6},
        {"date": str(days[2]), "used": 1},
    ]


def test_daily_splits_a_day_at_utc_midnight(key_client, customer, api_key):
    start = this_hour().replace(hour=0) - timedelta(days=2)
    billing_period(customer, start, start + timedelta(days=30))
    record(customer, api_key, start + timedelta(hours=23), 2)
    record(customer, api_key, start + timedelta(hours=24), 3)
    daily = usage(key_client)["daily"]
    assert [entry["used"] for entry in daily[:2]] == [2, 3]


def test_daily_puts_pending_usage_of_an_earlier_day_on_that_day(key_client, customer, api_key):
    start = this_hour().replace(hour=0) - timedelta(days=2)
    billing_period(customer, start, start + timedelta(days=30))
    bill_pending_at(api_key, start + timedelta(days=1, hours=12))
    daily = usage(key_client)["daily"]
    assert [entry["used"] for entry in daily] == [0, 1, 0]


def test_daily_adds_up_to_used(key_client, customer, api_key):
    start = this_hour() - timedelta(days=2)
    billing_period(customer, start, start + timedelta(days=30))
    record(customer, api_key, start, 4)
    key_client.get(ECHO)
    body = usage(key_client)
    assert sum(entry["used"] for entry in body["daily"]) == body["used"] == 5


@pytest.fixture
def done_means_traffic(key_client, customer):
    """The issue's scenario: 30 good, 10 rejected, 5 with one Idempotency-Key, health checks."""
    Customer.objects.filter(pk=customer.pk).update(burst_override=1000)
    statuses = [key_client.get(ECHO).status_code for _ in range(30)]
    statuses += [key_client.get(ECHO, TOO_LONG).status_code for _ in range(10)]
    statuses += [key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1").status_code for _ in range(5)]
    statuses += [key_client.get("/healthz").status_code for _ in range(3)]
    assert statuses == [200] * 30 + [400] * 10 + [200] * 5 + [200] * 3
    return key_client


def flush_and_restart() -> None:
    call_command("flush_usage", stdout=io.StringIO())
    key_contexts.clear()


def test_done_means_31_used_right_after_the_requests(done_means_traffic):
    assert usage(done_means_traffic)["used"] == 31


def test_done_means_31_used_after_a_flush_and_a_restart(done_means_traffic):
    flush_and_restart()
    assert usage(done_means_traffic)["used"] == 31


def test_done_means_postgresql_holds_the_31(done_means_traffic, customer):
    flush_and_restart()
    assert UsageRecord.objects.filter(customer=customer).aggregate(total=Sum("count"))["total"] == 31


def test_done_means_the_quota_left_is_969(done_means_traffic):
    flush_and_restart()
    assert usage(done_means_traffic)["remaining"] == 969


# A TIME_ZONE with daylight saving time: usage is still kept by UTC hour and day.
# Europe/Berlin springs forward at 01:00 UTC (02:00 CET becomes 03:00 CEST) and
# falls back at 01:00 UTC (03:00 CEST becomes 02:00 CET: 02:00-03:00 comes twice).
SPRING_FORWARD = utc(2027, 3, 28, 1)
FALL_BACK = utc(2027, 10, 31, 1)


@pytest.mark.parametrize("change", [SPRING_FORWARD, FALL_BACK], ids=["spring-forward", "fall-back"])
def test_usage_either_side_of_a_dst_change_is_kept_in_two_utc_hours(
    key_client, customer, settings, time_machine, change
):
    settings.TIME_ZONE = "Europe/Berlin"
    time_machine.move_to(change - timedelta(minutes=30), tick=False)
    key_client.get(ECHO)
    time_machine.move_to(change + timedelta(minutes=30), tick=False)
    key_client.get(ECHO)
    key_client.get(ECHO)
    flush_usage()
    hours = UsageRecord.objects.filter(customer=customer).order_by("hour").values_list("hour", "count")
    assert [(hour.astimezone(UTC), count) for hour, count in hours] == [
        (change - timedelta(hours=1), 1),
        (change, 2),
    ]


def test_usage_per_day_is_by_utc_day_in_a_time_zone_ahead_of_utc(key_client, settings, time_machine):
    settings.TIME_ZONE = "Europe/Berlin"
    time_machine.move_to(utc(2027, 3, 27, 23, 30), tick=False)  # already the 28th in Berlin
    key_client.get(ECHO)
    time_machine.move_to(SPRING_FORWARD + timedelta(minutes=30), tick=False)
    key_client.get(ECHO)
    key_client.get(ECHO)
    daily = usage(key_client)["daily"]
    assert (len(daily), daily[-2:]) == (
        28,
        [{"date": "2027-03-27", "used": 1}, {"date": "2027-03-28", "used": 2}],
    )


def test_the_period_of_a_dst_month_is_its_real_length_in_utc(key_client, settings, time_machine):
    settings.TIME_ZONE = "Europe/Berlin"
    time_machine.move_to(SPRING_FORWARD, tick=False)
    body = usage(key_client)
    start, end = moment(body["period_start"]), moment(body["period_end"])
    assert (start, end, end - start) == (utc(2027, 3, 1), utc(2027, 4, 1), timedelta(days=31))
