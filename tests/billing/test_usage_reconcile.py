"""The three-way usage reconcile: the Redis counter and pending usage, the
PostgreSQL ledger and Stripe's Billing Meter agree per customer and period,
or the drift is shown, recorded and makes the command fail."""

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from apikeys.services import api_key_create
from billing.models import UsageReconcileRun
from billing.overage import overage_reports_queue
from billing.tasks import reconcile_usage_task
from billing.usage_reconcile import usage_reconcile
from metering.flush import flush_usage
from metering.keys import quota_key
from metering.models import UsageRecord
from plans.models import Customer, SubscriptionStatus
from tests.billing.test_overage import applied, renewed, subscribed
from tests.utils import utc

pytestmark = pytest.mark.django_db

ECHO = "/api/v1/echo"
HOUR = utc(2027, 6, 15, 10)  # the hour the requests are served in
SERVED_AT = HOUR + timedelta(minutes=30)
PERIOD_END = HOUR + timedelta(hours=1)  # Alice's billing period ends with that hour
CLOSED = PERIOD_END + timedelta(hours=2)  # her last hour reported and sent


def client_for(customer) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(customer=customer, name='ci').raw_key}")
    return client


@pytest.fixture
def served(
    customer, other_customer, stripe_tiers, stripe_double, time_machine, django_capture_on_commit_callbacks
):
    """Alice on Scale (quota 10, then overage) uses 12 and has her 2 over
    reported to Stripe; Bob on Pro uses 3, flushed, then 2 more, pending."""
    stripe_id = stripe_double._create_customer({"email": "alice@example.com"})[1]["id"]
    Customer.objects.filter(pk=customer.pk).update(
        tier=stripe_tiers["scale"],
        stripe_customer_id=stripe_id,
        subscription_status=SubscriptionStatus.ACTIVE,
        current_period_start=HOUR - timedelta(days=3),
        current_period_end=PERIOD_END,
    )
    time_machine.move_to(SERVED_AT, tick=False)
    alice, bob = client_for(customer), client_for(other_customer)
    assert [alice.get(ECHO).status_code for _ in range(12)] == [200] * 12
    assert [bob.get(ECHO).status_code for _ in range(3)] == [200] * 3
    flush_usage()
    assert [bob.get(ECHO).status_code for _ in range(2)] == [200] * 2
    with django_capture_on_commit_callbacks(execute=True):
        assert overage_reports_queue(now=PERIOD_END + timedelta(minutes=15)) == 1
    return {"alice": customer, "bob": other_customer}


def reconcile_command(*args: str) -> str:
    out = io.StringIO()
    call_command("reconcile_usage", "--period", SERVED_AT.isoformat(), *args, stdout=out)
    return out.getvalue()


def failing_reconcile_command(time_machine) -> CommandError:
    time_machine.move_to(CLOSED)
    with pytest.raises(CommandError) as raised:
        reconcile_command()
    return raised.value


def test_usage_that_agrees_everywhere_shows_no_drift(served):
    result = usage_reconcile(now=CLOSED, periods=[SERVED_AT])
    figures = {
        row.customer_id: (row.counter, row.pending, row.ledger)
        + (row.expected_overage, row.reported_overage, row.stripe_overage)
        for row in result.rows
    }
    assert figures == {served["alice"].pk: (12, 0, 12, 2, 2, 2), served["bob"].pk: (5, 2, 3, None, 0, None)}
    assert result.drifting == []
    assert (result.run.rows_checked, result.run.drifting_rows, result.run.drift) == (2, 0, [])


def test_the_command_prints_the_table_and_exits_zero_without_drift(served, time_machine):
    time_machine.move_to(CLOSED)
    out = reconcile_command()
    assert out.splitlines()[0].split() == [
        "customer",
        "period",
        "counter",
        "pending",
        "ledger",
        "expected",
        "reported",
        "stripe",
        "drift",
    ]
    assert "alice@example.com" in out and "bob@example.com" in out
    assert out.splitlines()[-1] == "No drift: 2 customer periods, 0 drifting."


def test_a_unit_lost_from_the_redis_counter_is_drift(served, time_machine):
    start = int((HOUR - timedelta(days=3)).timestamp())
    get_redis_connection("default").decrby(quota_key(served["alice"].pk, start), 1)
    error = failing_reconcile_command(time_machine)
    assert error.returncode != 0
    (drift,) = UsageReconcileRun.objects.get().drift
    assert (drift["customer_id"], drift["counter"], drift["drifts"]) == (served["alice"].pk, 11, ["counter"])


def test_a_changed_ledger_row_is_drift(served, time_machine):
    row = UsageRecord.objects.get(customer=served["alice"])
    UsageRecord.objects.filter(pk=row.pk).update(count=row.count + 3)
    error = failing_reconcile_command(time_machine)
    assert error.returncode != 0
    (drift,) = UsageReconcileRun.objects.get().drift
    assert (drift["ledger"], drift["expected_overage"]) == (15, 5)
    assert drift["drifts"] == ["counter", "overage"]


def test_a_meter_event_missing_in_stripe_is_drift(served, stripe_double, time_machine):
    stripe_double.meter_events.clear()
    error = failing_reconcile_command(time_machine)
    assert error.returncode != 0
    (drift,) = UsageReconcileRun.objects.get().drift
    assert (drift["reported_overage"], drift["stripe_overage"], drift["drifts"]) == (2, 0, ["stripe"])


def test_without_stripe_the_stripe_column_is_skipped_and_said_so(served, settings, time_machine):
    settings.STRIPE_SECRET_KEY = ""
    time_machine.move_to(CLOSED)
    out = reconcile_command()
    assert out.splitlines()[0] == "Stripe is not configured: the Stripe column is skipped."
    run = UsageReconcileRun.objects.get()
    assert (run.stripe_checked, run.drifting_rows) == (False, 0)


def test_an_unknown_period_is_refused(db):
    with pytest.raises(CommandError, match="use current, previous or a date"):
        call_command("reconcile_usage", "--period", "last-tuesday", stdout=io.StringIO())


def test_the_daily_beat_runs_the_usage_reconcile(served, time_machine):
    entry = settings.CELERY_BEAT_SCHEDULE["reconcile-usage"]
    assert (entry["task"], entry["schedule"]) == ("billing.tasks.reconcile_usage_task", 24 * 3600.0)
    time_machine.move_to(SERVED_AT + timedelta(minutes=1))  # the current period, Alice's still open
    assert reconcile_usage_task() == 0
    assert UsageReconcileRun.objects.get().periods == "previous, current"


def test_the_admin_lists_the_reconcile_runs(served, admin_client):  # signed in at the served time
    usage_reconcile(now=CLOSED, periods=[SERVED_AT])
    listing = admin_client.get("/admin/billing/usagereconcilerun/")
    assert listing.status_code == 200
    assert "previous" not in listing.content.decode()  # the run compared one given period
    assert listing.context["cl"].result_count == 1
    assert admin_client.get("/admin/billing/usagereconcilerun/add/").status_code == 403


def test_a_period_begun_on_the_free_tier_is_reconciled_with_the_bounds_it_had(
    customer, stripe_tiers, stripe_double, time_machine, django_capture_on_commit_callbacks
):
    """Alice starts March on the free tier (a calendar month), upgrades to Scale on the
    20th (the quota period in progress is kept: it runs Mar 1 to Apr 20) and
    renews on Apr 20. Her closed period is compared whole, by its own bounds,
    with no drift, whether asked for as "previous" or by a date inside it."""
    alice = client_for(customer)
    time_machine.move_to(utc(2027, 3, 15, 10, 30), tick=False)
    assert [alice.get(ECHO).status_code for _ in range(3)] == [200] * 3
    flush_usage()
    stripe_id = stripe_double._create_customer({"email": "alice@example.com"})[1]["id"]
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_id)
    first = (utc(2027, 3, 20, 12), utc(2027, 4, 20, 12))
    subscription = subscribed(stripe_double, customer, stripe_tiers["scale"], first)
    Customer.objects.filter(pk=customer.pk).update(current_period_start=None, current_period_end=None)
    with django_capture_on_commit_callbacks(execute=True):  # the key context version bump
        applied(subscription, first[0] + timedelta(minutes=1), status="active")
    time_machine.move_to(utc(2027, 4, 5, 9), tick=False)
    assert [alice.get(ECHO).status_code for _ in range(2)] == [200] * 2
    flush_usage()
    second = (first[1], utc(2027, 5, 20, 12))
    with django_capture_on_commit_callbacks(execute=True):
        applied(subscription, second[0] + timedelta(minutes=1), **renewed(subscription, second))
    time_machine.move_to(utc(2027, 4, 25, 9), tick=False)
    assert alice.get(ECHO).status_code == 200
    flush_usage()

    rows = {row.period_start: row for row in usage_reconcile(now=utc(2027, 4, 25, 10)).rows}
    closed = rows[utc(2027, 3, 1)]
    assert (closed.period_end, closed.counter, closed.ledger, closed.drifts) == (first[1], 5, 5, [])
    assert (rows[second[0]].ledger, rows[second[0]].drifts) == (1, [])
    by_date = usage_reconcile(now=utc(2027, 4, 25, 10), periods=[utc(2027, 3, 15)]).rows
    assert [(row.period_start, row.period_end, row.drifts) for row in by_date] == [
        (utc(2027, 3, 1), first[1], [])
    ]
