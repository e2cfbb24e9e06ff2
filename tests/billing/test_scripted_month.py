"""A month of a small business, through the real request path, webhooks,
flushes, overage reports and a Redis restart, ending with the three-way usage
reconcile finding no drift (issue 13's done-means).

Redis is a private redis-server with AOF (appendfsync always, so that its
SIGKILL below loses nothing by construction; production's everysec may lose
the last second, as README says). The clock stops at each step.
"""

import io
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from rest_framework.test import APIClient

from apikeys.services import api_key_create
from billing.models import OverageReport
from billing.overage import overage_reports_queue
from metering.flush import flush_usage
from plans.periods import add_months
from plans.services import customer_get_or_create
from tests.metering.test_limiter_redis_faults import RedisServer
from tests.utils import utc

from .conftest import make_event

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "/api/v1/echo"
START = utc(2027, 3, 10, 14, 37)  # the subscriptions start inside an hour
RENEWAL = add_months(START, 1)


@pytest.fixture
def aof_redis(tmp_path, settings):
    server = RedisServer(
        tmp_path, persistence=("--save", "", "--appendonly", "yes", "--appendfsync", "always")
    )
    server.start()
    caches = {**settings.CACHES}
    caches["default"] = {**caches["default"], "LOCATION": f"redis://127.0.0.1:{server.port}/0"}
    settings.CACHES = caches
    yield server
    server.kill()


class Month:
    """The actors: Stripe (the double), the clock, and one API client per customer."""

    def __init__(self, double, deliver, tiers, clock):
        self.double, self.deliver, self.tiers, self.clock = double, deliver, tiers, clock
        self.clients, self.subscriptions = {}, {}

    def at(self, moment):
        self.clock.move_to(moment, tick=False)

    def subscribe(self, customer, slug, start, end):
        stripe_id = self.double._create_customer({"email": customer.user.email})[1]["id"]
        customer.stripe_customer_id = stripe_id
        customer.save(update_fields=["stripe_customer_id"])
        tier = self.tiers[slug]
        prices = [tier.stripe_price_id] + ([tier.stripe_overage_price_id] if tier.has_overage else [])
        subscription = self.double.add_subscription(
            customer=stripe_id,
            price_ids=prices,
            period_start=int(start.timestamp()),
            period_end=int(end.timestamp()),
            metadata={"customer_id": str(customer.pk)},
        )
        self.subscriptions[customer.pk] = subscription
        self.deliver(make_event("customer.subscription.created", subscription))
        client = APIClient()
        client.credentials(
            HTTP_AUTHORIZATION=f"Bearer {api_key_create(customer=customer, name='app').raw_key}"
        )
        self.clients[customer.pk] = client

    def change(self, customer, event_type, *, slug=None, period=None, **fields):
        """Stripe changed the subscription (a plan change, a renewal, an end) and says so."""
        subscription = self.subscriptions[customer.pk]
        items = subscription["items"]["data"]
        if slug is not None:
            tier = self.tiers[slug]
            prices = [tier.stripe_price_id] + ([tier.stripe_overage_price_id] if tier.has_overage else [])
            items[:] = [{**items[0], "price": {**items[0]["price"], "id": price}} for price in prices]
        if period is not None:
            for item in items:
                item["current_period_start"], item["current_period_end"] = (
                    int(m.timestamp()) for m in period
                )
        subscription.update(fields)
        self.deliver(make_event(event_type, subscription))

    def call(self, customer, times, **headers) -> list[int]:
        return [self.clients[customer.pk].get(ECHO, **headers).status_code for _ in range(times)]


def concurrently(calls: int, function) -> list:
    results, barrier = [None] * calls, threading.Barrier(calls)

    def run(index):
        barrier.wait()
        try:
            results[index] = function()
        finally:
            connections.close_all()  # this thread's own, or the test database outlives the test

    threads = [threading.Thread(target=run, args=(index,)) for index in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_a_scripted_month_ends_with_no_usage_drift(
    aof_redis, stripe_double, stripe_tiers, customer, other_customer, deliver, time_machine
):
    carol, _ = customer_get_or_create(email="carol@example.com")
    alice, bob = customer, other_customer
    month = Month(stripe_double, deliver, stripe_tiers, time_machine)

    # Mar 10 14:37: three subscriptions start, inside an hour.
    month.at(START)
    month.subscribe(alice, "scale", START, RENEWAL)  # quota 10, then overage
    month.subscribe(bob, "pro", START, RENEWAL)
    month.subscribe(carol, "pro", START, RENEWAL)

    # 15:10: traffic, and five concurrent retries of one request: served and billed once.
    month.at(START + timedelta(minutes=33))
    assert month.call(alice, 8) == [200] * 8
    key = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
    statuses = concurrently(5, lambda: month.call(alice, 1, **key)[0])
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}
    assert month.call(bob, 3) == [200] * 3
    assert month.call(carol, 2) == [200] * 2
    flush_usage()

    # 16:20: Alice goes over her quota; two report runs overlap at 17:15.
    month.at(START + timedelta(hours=1, minutes=43))
    assert month.call(alice, 5) == [200] * 5
    flush_usage()
    month.at(START + timedelta(hours=2, minutes=38))
    made = concurrently(2, lambda: overage_reports_queue(now=START + timedelta(hours=2, minutes=38)))
    assert sum(made) == 1

    # Mar 15: Bob upgrades to Scale and goes over; Mar 20: he downgrades to Pro.
    month.at(START + timedelta(days=5))
    month.change(bob, "customer.subscription.updated", slug="scale")
    assert month.call(bob, 12) == [200] * 12
    flush_usage()
    month.at(START + timedelta(days=10))
    month.change(bob, "customer.subscription.updated", slug="pro")
    assert month.call(bob, 1) == [200]

    # Mar 22: Carol cancels.
    cancelled = START + timedelta(days=12)
    month.at(cancelled)
    month.change(
        carol, "customer.subscription.deleted", status="canceled", ended_at=int(cancelled.timestamp())
    )

    # Mar 25: Redis is killed with Alice's last two requests unflushed, and restarts from its AOF.
    month.at(START + timedelta(days=15))
    assert month.call(alice, 2) == [200] * 2
    aof_redis.kill()
    aof_redis.start(port=aof_redis.port)
    flush_usage()

    # Apr 10 14:37: Alice renews on time; Bob's renewal arrives three hours late.
    month.at(RENEWAL)
    next_period = (RENEWAL, add_months(START, 2))
    month.change(alice, "customer.subscription.updated", period=next_period)
    assert month.call(alice, 3) == [200] * 3
    month.at(RENEWAL + timedelta(minutes=30))
    assert month.call(bob, 2) == [200] * 2
    month.at(RENEWAL + timedelta(hours=3))
    month.change(bob, "customer.subscription.updated", period=next_period)
    assert month.call(bob, 1) == [200]

    # Apr 10 20:00: the last flush and report; then the reconcile of both months.
    month.at(RENEWAL + timedelta(hours=5, minutes=23))
    flush_usage()
    overage_reports_queue(now=RENEWAL + timedelta(hours=5, minutes=23))
    out = io.StringIO()
    periods = ("previous", "current")
    try:
        call_command(
            "reconcile_usage", *(arg for period in periods for arg in ("--period", period)), stdout=out
        )
    finally:
        print(out.getvalue())  # the table, for the record (pytest shows it with -s or on failure)
    assert out.getvalue().splitlines()[-1].startswith("No drift")
    assert OverageReport.objects.filter(customer=alice).exists()
    assert get_user_model().objects.count() == 3
