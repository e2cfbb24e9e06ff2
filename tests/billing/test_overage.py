"""Hybrid pricing: usage over the quota is admitted on overage tiers, reported
to Stripe hourly as Billing Meter events, never twice; a spending cap stops it."""

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone

from billing.models import OverageReport, StripeSync, SyncStatus
from billing.overage import overage_reports_create
from billing.subscriptions import customer_for_subscription, subscription_apply
from billing.tasks import report_overage_task, run_stripe_sync
from metering.flush import flush_usage
from metering.models import UsageRecord
from plans.models import Customer, SubscriptionStatus, Tier
from tests.faults.server import free_port
from tests.utils import month_ends, utc

from .conftest import make_event
from .stripe_double import SERVER_ERROR

pytestmark = pytest.mark.django_db

ECHO = "/api/v1/echo"


@pytest.fixture
def scale_customer(customer, stripe_tiers, stripe_double):
    """Alice subscribed to Scale (quota 10 a month, then $2.00 per 1,000)."""
    now = timezone.now()
    stripe_id = stripe_double._create_customer({"email": "alice@example.com"})[1]["id"]
    Customer.objects.filter(pk=customer.pk).update(
        tier=stripe_tiers["scale"],
        stripe_customer_id=stripe_id,
        stripe_subscription_id="sub_scale",
        subscription_status=SubscriptionStatus.ACTIVE,
        current_period_start=now - timedelta(days=3),
        current_period_end=now + timedelta(days=27),
    )
    return Customer.objects.select_related("tier").get(pk=customer.pk)


def use(customer, key, units: int, hours_ago: int) -> None:
    hour = (timezone.now() - timedelta(hours=hours_ago)).replace(minute=0, second=0, microsecond=0)
    UsageRecord.objects.update_or_create(
        customer=customer, api_key=key, endpoint="echo", hour=hour, defaults={"count": units}
    )


def use_in(customer, key, units: int, hour: datetime) -> None:
    UsageRecord.objects.create(customer=customer, api_key=key, endpoint="echo", hour=hour, count=units)


def billing_period(customer, start: datetime, end: datetime) -> None:
    Customer.objects.filter(pk=customer.pk).update(current_period_start=start, current_period_end=end)


def test_an_overage_tier_admits_requests_over_the_quota(scale_customer, key_client):
    statuses = [key_client.get(ECHO).status_code for _ in range(15)]
    assert statuses == [200] * 15
    assert key_client.get("/api/v1/usage").json()["used"] == 15


def test_a_hard_tier_refuses_requests_over_the_quota(customer, key_client):
    Customer.objects.filter(pk=customer.pk).update(quota_override=3)
    assert [key_client.get(ECHO).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_at_the_spending_cap_overage_stops_with_429(scale_customer, key_client):
    # $0.01 buys 5 requests at $2.00 per 1,000: the ceiling is 10 + 5.
    Customer.objects.filter(pk=scale_customer.pk).update(overage_spending_cap=Decimal("0.01"))
    statuses = [key_client.get(ECHO).status_code for _ in range(16)]
    assert statuses == [200] * 15 + [429]
    refused = key_client.get(ECHO)
    assert refused.json()["error"] == "spending_cap_reached"


def test_the_overage_of_the_last_complete_hour_is_recorded_once(scale_customer, api_key):
    use(scale_customer, api_key.api_key, 8, hours_ago=3)
    use(scale_customer, api_key.api_key, 7, hours_ago=2)  # 15 used: 5 over the quota
    (report,) = overage_reports_create(now=timezone.now())
    assert report.units == 5
    assert report.identifier == f"overage-{scale_customer.pk}-{int(report.hour.timestamp())}"
    assert overage_reports_create(now=timezone.now()) == []  # run again: nothing new


def test_usage_flushed_late_is_reported_the_next_hour(scale_customer, api_key):
    use(scale_customer, api_key.api_key, 12, hours_ago=3)
    overage_reports_create(now=timezone.now() - timedelta(hours=1))
    use(scale_customer, api_key.api_key, 4, hours_ago=2)  # arrives after that hour's report
    overage_reports_create(now=timezone.now())
    assert sorted(OverageReport.objects.values_list("units", flat=True)) == [2, 4]


def test_the_spending_cap_caps_the_reported_overage(scale_customer, api_key):
    Customer.objects.filter(pk=scale_customer.pk).update(overage_spending_cap=Decimal("0.01"))
    use(scale_customer, api_key.api_key, 40, hours_ago=2)
    (report,) = overage_reports_create(now=timezone.now())
    assert report.units == 5


def test_customers_within_their_quota_have_nothing_to_report(scale_customer, api_key):
    use(scale_customer, api_key.api_key, 10, hours_ago=2)
    assert overage_reports_create(now=timezone.now()) == []


def test_the_hourly_task_sends_one_meter_event_per_report(
    scale_customer, api_key, stripe_double, django_capture_on_commit_callbacks
):
    use(scale_customer, api_key.api_key, 13, hours_ago=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert report_overage_task() == 1
    report = OverageReport.objects.get()
    (sent,) = stripe_double.requests_to("POST", "/v1/billing/meter_events")
    assert sent.params == {
        "event_name": "api_overage_requests",
        "identifier": report.identifier,
        "timestamp": str(int((report.hour + timedelta(hours=1)).timestamp()) - 1),
        "payload": {"stripe_customer_id": scale_customer.stripe_customer_id, "value": "3"},
    }
    assert sent.headers["idempotency-key"] == report.identifier
    assert report.reported_at is not None
    assert StripeSync.objects.get(operation="overage").status == SyncStatus.SUCCEEDED


def test_resending_a_report_never_bills_twice(
    scale_customer, api_key, stripe_double, django_capture_on_commit_callbacks
):
    """Stripe failing after it recorded the event: the retry carries the same
    identifier and idempotency key, and Stripe keeps one event."""
    use(scale_customer, api_key.api_key, 13, hours_ago=2)
    with django_capture_on_commit_callbacks(execute=True):
        report_overage_task()
    sync = StripeSync.objects.get(operation="overage")
    StripeSync.objects.filter(pk=sync.pk).update(status=SyncStatus.FAILED)  # as if the answer was lost
    run_stripe_sync.apply(args=[sync.pk])
    assert len(stripe_double.requests_to("POST", "/v1/billing/meter_events")) == 2
    assert list(stripe_double.meter_events) == [OverageReport.objects.get().identifier]
    assert StripeSync.objects.get(operation="overage").status == SyncStatus.SUCCEEDED


def test_a_report_stripe_refused_is_kept_failed_for_a_replay(
    scale_customer, api_key, stripe_double, django_capture_on_commit_callbacks
):
    use(scale_customer, api_key.api_key, 13, hours_ago=2)
    stripe_double.fail("POST", "/v1/billing/meter_events", SERVER_ERROR)
    with django_capture_on_commit_callbacks(execute=True):
        report_overage_task()
    sync = StripeSync.objects.get(operation="overage")
    assert sync.status == SyncStatus.FAILED
    assert OverageReport.objects.get().reported_at is None
    run_stripe_sync.apply(args=[sync.pk])
    assert StripeSync.objects.get(operation="overage").status == SyncStatus.SUCCEEDED
    assert len(stripe_double.meter_events) == 1


def test_overage_flows_from_requests_to_a_meter_event(
    scale_customer, key_client, stripe_double, django_capture_on_commit_callbacks
):
    for _ in range(12):
        key_client.get(ECHO)
    flush_usage()
    # Report as of the next hour (the usage hour must be complete).
    later = datetime.now(UTC) + timedelta(hours=1, minutes=15)
    (report,) = overage_reports_create(now=later)
    assert report.units == 2


def test_the_usage_api_projects_the_bill(scale_customer, key_client):
    for _ in range(12):
        key_client.get(ECHO)
    bill = key_client.get("/api/v1/usage").json()["bill"]
    assert bill["currency"] == "usd"
    assert bill["flat"] == "49.00"
    assert bill["overage_units"] == 2
    assert bill["overage"] == "0.00"  # 2 requests at $0.002: under a cent
    assert bill["projected_overage_units"] >= 2
    assert Decimal(bill["projected_total"]) >= Decimal("49.00")


# Across the day, month and year change: the report's clock is its argument.


def test_the_last_hour_of_a_day_is_reported_after_midnight(scale_customer, api_key):
    billing_period(scale_customer, utc(2027, 6, 1), utc(2027, 7, 1))
    use_in(scale_customer, api_key.api_key, 15, utc(2027, 6, 15, 23))
    (report,) = overage_reports_create(now=utc(2027, 6, 16, 0, 10))
    assert (report.hour, report.units) == (utc(2027, 6, 15, 23), 5)


@month_ends()
def test_the_last_hour_of_a_month_is_reported_against_that_months_quota(scale_customer, api_key, edge):
    billing_period(scale_customer, edge.month_start, edge.month_end)
    last_hour = edge.month_end - timedelta(hours=1)
    use_in(scale_customer, api_key.api_key, 8, edge.month_start)
    use_in(scale_customer, api_key.api_key, 7, last_hour)
    (report,) = overage_reports_create(now=edge.month_end + timedelta(minutes=10))
    assert (report.hour, report.units) == (last_hour, 5)


@month_ends()
def test_the_first_hour_of_the_next_month_counts_against_a_fresh_quota(scale_customer, api_key, edge):
    billing_period(scale_customer, edge.month_start, edge.month_end)
    use_in(scale_customer, api_key.api_key, 15, edge.month_end - timedelta(hours=1))
    overage_reports_create(now=edge.month_end + timedelta(minutes=10))
    use_in(scale_customer, api_key.api_key, 4, edge.month_end)
    assert overage_reports_create(now=edge.month_end + timedelta(hours=1, minutes=10)) == []


@month_ends()
def test_overage_in_the_first_hour_of_the_next_month_is_reported_in_that_month(scale_customer, api_key, edge):
    billing_period(scale_customer, edge.month_start, edge.month_end)
    use_in(scale_customer, api_key.api_key, 12, edge.month_end)
    (report,) = overage_reports_create(now=edge.month_end + timedelta(hours=1, minutes=10))
    assert (report.hour, report.units) == (edge.month_end, 2)


# Exactly once, in the period it was served in.


def run_in_thread(target) -> threading.Thread:
    def body():
        try:
            with transaction.atomic():
                target()
        finally:
            connection.close()

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def wait_for_blocked_sessions(count: int) -> None:
    with connection.cursor() as cursor:
        for _ in range(200):
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else the first read is kept to the end
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] >= count:
                return
            time.sleep(0.05)
    raise AssertionError(f"{count} sessions never blocked")


@pytest.mark.django_db(transaction=True)
def test_two_overlapping_report_runs_bill_the_overage_once(scale_customer, api_key):
    billing_period(scale_customer, utc(2027, 6, 1), utc(2027, 7, 1))
    use_in(scale_customer, api_key.api_key, 30, utc(2027, 6, 15, 13))  # 20 over the quota
    with transaction.atomic(), connection.cursor() as cursor:
        # Both runs read what was reported before either records anything.
        cursor.execute("LOCK TABLE billing_overagereport IN SHARE MODE")
        runs = [
            run_in_thread(lambda at=at: overage_reports_create(now=at))
            for at in (utc(2027, 6, 15, 14, 10), utc(2027, 6, 15, 15, 10))
        ]
        wait_for_blocked_sessions(2)
    for run in runs:
        run.join(timeout=10)
    assert sum(OverageReport.objects.values_list("units", flat=True)) == 20


P1 = (utc(2027, 6, 15, 14, 30), utc(2027, 7, 15, 14, 30))
P2 = (utc(2027, 7, 15, 14, 30), utc(2027, 8, 15, 14, 30))


def subscribed(stripe_double, customer, tier, period) -> dict:
    subscription = stripe_double.add_subscription(
        customer=customer.stripe_customer_id,
        price_ids=[tier.stripe_price_id, tier.stripe_overage_price_id],
        period_start=int(period[0].timestamp()),
        period_end=int(period[1].timestamp()),
        metadata={"customer_id": str(customer.pk)},
    )
    Customer.objects.filter(pk=customer.pk).update(
        stripe_subscription_id=subscription["id"],
        current_period_start=period[0],
        current_period_end=period[1],
    )
    return subscription


def applied(subscription: dict, at: datetime, **changes) -> None:
    """Stripe's subscription, changed, applied at `at` as the webhook's task applies it."""
    subscription = {**subscription, **changes}
    with time_machine.travel(at, tick=False), transaction.atomic():
        customer = customer_for_subscription(subscription)
        assert subscription_apply(customer, subscription).applied


def renewed(subscription: dict, period) -> dict:
    items = [
        {
            **item,
            "current_period_start": int(period[0].timestamp()),
            "current_period_end": int(period[1].timestamp()),
        }
        for item in subscription["items"]["data"]
    ]
    return {"items": {**subscription["items"], "data": items}}


def price_change(subscription: dict, tier, period=None) -> dict:
    """Changes that move the subscription's first item to `tier`'s price (and to
    `period`, when a renewal comes with it)."""
    item = subscription["items"]["data"][0]
    moved = {**item, "price": {**item["price"], "id": tier.stripe_price_id}}
    if period is not None:
        moved.update(
            current_period_start=int(period[0].timestamp()), current_period_end=int(period[1].timestamp())
        )
    return {"items": {**subscription["items"], "data": [moved]}}


def reported_in(customer, period) -> int:
    reports = OverageReport.objects.filter(customer=customer)
    assert all(period[0].timestamp() <= r.meter_timestamp() < period[1].timestamp() for r in reports)
    return sum(r.units for r in reports if period[0] <= r.hour < period[1])


def test_at_renewal_the_closed_periods_last_hours_are_reported_in_that_period(
    scale_customer, api_key, stripe_double, stripe_tiers
):
    subscription = subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    use_in(scale_customer, api_key.api_key, 10, utc(2027, 6, 20, 10))  # the quota
    use_in(scale_customer, api_key.api_key, 5, utc(2027, 7, 15, 13))
    use_in(scale_customer, api_key.api_key, 5, utc(2027, 7, 15, 14))  # up to 14:30, the period's end
    overage_reports_create(now=utc(2027, 7, 15, 14, 10))
    applied(subscription, utc(2027, 7, 15, 14, 31), **renewed(subscription, P2))
    overage_reports_create(now=utc(2027, 7, 15, 15, 10))
    assert reported_in(scale_customer, P1) == 10


def test_at_renewal_usage_flushed_late_is_reported_in_the_closed_period(
    scale_customer, api_key, stripe_double, stripe_tiers
):
    subscription = subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    use_in(scale_customer, api_key.api_key, 10, utc(2027, 6, 20, 10))
    use_in(scale_customer, api_key.api_key, 4, utc(2027, 7, 15, 12))
    overage_reports_create(now=utc(2027, 7, 15, 13, 10))
    applied(subscription, utc(2027, 7, 15, 14, 31), **renewed(subscription, P2))
    overage_reports_create(now=utc(2027, 7, 15, 15, 10))
    use_in(scale_customer, api_key.api_key, 12, utc(2027, 7, 15, 14))  # flushed late
    overage_reports_create(now=utc(2027, 7, 15, 16, 10))
    assert reported_in(scale_customer, P1) == 16


def test_a_plan_change_mid_hour_reports_the_old_tiers_overage_first(
    scale_customer, api_key, stripe_double, stripe_tiers
):
    subscription = subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    use_in(scale_customer, api_key.api_key, 20, utc(2027, 7, 1, 10))
    overage_reports_create(now=utc(2027, 7, 1, 11, 10))
    use_in(scale_customer, api_key.api_key, 7, utc(2027, 7, 1, 11))
    applied(subscription, utc(2027, 7, 1, 11, 45), **price_change(subscription, stripe_tiers["pro"]))
    overage_reports_create(now=utc(2027, 7, 1, 12, 10))
    assert reported_in(scale_customer, P1) == 17


def test_a_cancellation_mid_hour_reports_the_outstanding_overage_first(
    scale_customer, api_key, stripe_double, stripe_tiers
):
    subscription = subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    use_in(scale_customer, api_key.api_key, 20, utc(2027, 7, 1, 10))
    overage_reports_create(now=utc(2027, 7, 1, 11, 10))
    use_in(scale_customer, api_key.api_key, 7, utc(2027, 7, 1, 11))
    ended = int(utc(2027, 7, 1, 11, 45).timestamp())
    applied(subscription, utc(2027, 7, 1, 11, 45), status="canceled", ended_at=ended)
    overage_reports_create(now=utc(2027, 7, 1, 12, 10))
    assert reported_in(scale_customer, P1) == 17


def test_usage_flushed_after_a_closed_periods_last_report_still_lands_in_that_period(
    scale_customer, api_key, stripe_double, stripe_tiers
):
    subscription = subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    use_in(scale_customer, api_key.api_key, 10, utc(2027, 6, 20, 10))
    use_in(scale_customer, api_key.api_key, 5, utc(2027, 7, 15, 14))
    applied(subscription, utc(2027, 7, 15, 14, 31), **renewed(subscription, P2))  # reports the last hour
    UsageRecord.objects.create(  # from another worker's flush, late
        customer=scale_customer, api_key=api_key.api_key, endpoint="other", hour=utc(2027, 7, 15, 14), count=3
    )
    overage_reports_create(now=utc(2027, 7, 15, 16, 10))
    assert reported_in(scale_customer, P1) == 8


def test_a_period_that_ended_before_its_renewal_arrived_is_settled_to_its_end(
    scale_customer, api_key, stripe_double, stripe_tiers
):
    subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    use_in(scale_customer, api_key.api_key, 10, utc(2027, 6, 20, 10))
    use_in(scale_customer, api_key.api_key, 5, utc(2027, 7, 15, 14))
    overage_reports_create(now=utc(2027, 7, 15, 15, 10))  # the renewal webhook is not in yet
    assert reported_in(scale_customer, P1) == 5


def test_a_daily_quota_tier_stored_before_the_validation_is_not_billed_against_a_month(
    scale_customer, api_key
):
    """Tiers now refuse overage on a daily quota; one stored earlier must not
    be billed its month's usage over one day's quota."""
    Tier.objects.filter(pk=scale_customer.tier_id).update(quota_period="day")
    billing_period(scale_customer, utc(2027, 6, 1), utc(2027, 7, 1))
    for day in (1, 2, 3):
        use_in(scale_customer, api_key.api_key, 10, utc(2027, 6, day, 12))  # each day within its quota
    assert overage_reports_create(now=utc(2027, 6, 3, 14, 10)) == []


def on_price(double, subscription: dict, tier) -> None:
    """Stripe's copy of the subscription moved to the tier's flat price (a plan change)."""
    for item in double.subscriptions[subscription["id"]]["items"]["data"]:
        item["price"] = {**item["price"], "id": tier.stripe_price_id}


def test_a_plan_change_reports_the_old_tiers_overage_still_in_redis(
    scale_customer, key_client, stripe_double, stripe_tiers, deliver, time_machine
):
    """Usage served on Scale but not flushed when the change to Pro arrives is
    still Scale's: the webhook's apply flushes the customer first."""
    subscription = subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    time_machine.move_to(utc(2027, 7, 1, 10, 30), tick=False)
    assert [key_client.get(ECHO).status_code for _ in range(15)] == [200] * 15  # 5 over, in Redis
    pro = stripe_tiers["pro"]
    on_price(stripe_double, subscription, pro)
    deliver(make_event("customer.subscription.updated", stripe_double.subscriptions[subscription["id"]]))
    assert Customer.objects.get(pk=scale_customer.pk).tier == pro
    overage_reports_create(now=utc(2027, 7, 1, 12, 10))
    assert reported_in(scale_customer, P1) == 5


def test_a_plan_change_applies_while_redis_is_unreachable(
    scale_customer, stripe_double, stripe_tiers, deliver, settings
):
    """The flush before the change is best effort: the change itself never waits for Redis."""
    subscription = subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    pro = stripe_tiers["pro"]
    on_price(stripe_double, subscription, pro)
    default = settings.CACHES["default"]
    settings.CACHES = {"default": {**default, "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    deliver(make_event("customer.subscription.updated", stripe_double.subscriptions[subscription["id"]]))
    assert Customer.objects.get(pk=scale_customer.pk).tier == pro


def test_usage_flushed_late_after_a_cancellation_is_reported_in_the_cancelled_period(
    scale_customer, api_key, stripe_double, stripe_tiers
):
    """Once cancelled, Alice is on the free tier; the paid period she left
    still takes the usage its last hour flushes late, priced as it was."""
    subscription = subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    use_in(scale_customer, api_key.api_key, 20, utc(2027, 7, 1, 10))
    ended = int(utc(2027, 7, 1, 11, 45).timestamp())
    applied(subscription, utc(2027, 7, 1, 11, 45), status="canceled", ended_at=ended)  # reports 10
    use_in(scale_customer, api_key.api_key, 3, utc(2027, 7, 1, 11))  # served before 11:45, flushed late
    overage_reports_create(now=utc(2027, 7, 1, 13, 10))
    assert reported_in(scale_customer, (P1[0], utc(2027, 7, 1, 11, 45))) == 13


def test_a_closed_period_is_priced_on_the_limits_it_had_not_the_tier_after_it(
    scale_customer, api_key, stripe_double, stripe_tiers
):
    """Renewed onto Pro (a bigger quota): the Scale period's late usage is
    still overage over Scale's quota of 10."""
    subscription = subscribed(stripe_double, scale_customer, stripe_tiers["scale"], P1)
    use_in(scale_customer, api_key.api_key, 12, utc(2027, 7, 15, 12))
    applied(subscription, utc(2027, 7, 15, 14, 31), **price_change(subscription, stripe_tiers["pro"], P2))
    use_in(scale_customer, api_key.api_key, 3, utc(2027, 7, 15, 14))  # flushed late
    overage_reports_create(now=utc(2027, 7, 15, 16, 10))
    assert reported_in(scale_customer, P1) == 5
