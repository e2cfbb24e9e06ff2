"""Hybrid pricing: usage over the quota is admitted on overage tiers, reported
to Stripe hourly as Billing Meter events, never twice; a spending cap stops it."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import OverageReport, StripeSync, SyncStatus
from billing.overage import overage_reports_create
from billing.tasks import report_overage_task, run_stripe_sync
from metering.flush import flush_usage
from metering.models import UsageRecord
from plans.models import Customer, SubscriptionStatus
from tests.utils import month_ends, utc

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
