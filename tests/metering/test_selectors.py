"""Reads of billable usage (metering/selectors.py): every unit counts in
exactly one billing period, whatever minute of an hour the period starts."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django_redis import get_redis_connection

from metering import selectors
from metering.flush import flush_usage
from metering.keys import quota_key
from metering.selectors import usage_by_hour, usage_in_period
from plans.models import Customer
from plans.periods import add_months, period_bounds

ECHO = "/api/v1/echo"
# A billing period renews at 14:37, inside an hour.
RENEWAL = datetime(2025, 3, 12, 14, 37, tzinfo=UTC)
OLD = (add_months(RENEWAL, -1), RENEWAL)
NEW = (RENEWAL, add_months(RENEWAL, 1))


@pytest.fixture
def renewing_customer(customer):
    """Alice, whose stored billing period ends at RENEWAL (the renewal webhook not yet in)."""
    Customer.objects.filter(pk=customer.pk).update(current_period_start=OLD[0], current_period_end=OLD[1])
    return customer


def serve_at(client, clock, moment: datetime, requests: int) -> None:
    for second in range(requests):
        clock.now = (moment + timedelta(seconds=second)).timestamp()
        assert client.get(ECHO).status_code == 200


@pytest.fixture
def served_across_the_renewal(renewing_customer, key_client, clock):
    """4 requests at 14:10 (old period), 2 at 14:50 (new period)."""
    serve_at(key_client, clock, RENEWAL.replace(minute=10), 4)
    serve_at(key_client, clock, RENEWAL.replace(minute=50), 2)
    return renewing_customer


def used(customer, period) -> int:
    return usage_in_period(customer_id=customer.pk, start=period[0], end=period[1]).total


def test_a_period_starting_inside_an_hour_counts_only_its_own_units_while_pending(served_across_the_renewal):
    assert (used(served_across_the_renewal, OLD), used(served_across_the_renewal, NEW)) == (4, 2)


def test_a_period_starting_inside_an_hour_counts_only_its_own_units_once_flushed(served_across_the_renewal):
    flush_usage()
    assert (used(served_across_the_renewal, OLD), used(served_across_the_renewal, NEW)) == (4, 2)


def test_usage_by_hour_shows_both_periods_units_under_their_hour(served_across_the_renewal):
    flush_usage()
    hour = RENEWAL.replace(minute=0)
    assert usage_by_hour(customer_id=served_across_the_renewal.pk, start=hour, end=NEW[1]) == {hour: 6}


def test_the_quota_seed_of_a_period_starting_inside_an_hour_counts_only_its_own_units(
    renewing_customer, key_client, clock
):
    serve_at(key_client, clock, RENEWAL.replace(minute=10), 4)
    serve_at(key_client, clock, RENEWAL.replace(minute=50), 1)
    counter = get_redis_connection("default").get(quota_key(renewing_customer.pk, int(RENEWAL.timestamp())))
    assert int(counter) == 1


@pytest.mark.django_db(transaction=True)
def test_a_flush_committing_between_the_ledger_and_redis_reads_counts_each_unit_once(
    monkeypatch, customer, key_client, clock
):
    serve_at(key_client, clock, RENEWAL, 6)
    read_redis = selectors.pending_usage_fields

    def flush_meanwhile(customer_id):
        """A flush in another process runs right after the ledger was read."""
        flusher = threading.Thread(target=flush_then_close)
        flusher.start()
        flusher.join(timeout=1)  # it may have to wait for this read to end
        fields = read_redis(customer_id)
        threads.append(flusher)
        return fields

    threads: list[threading.Thread] = []
    monkeypatch.setattr(selectors, "pending_usage_fields", flush_meanwhile)
    start, end = period_bounds("month", RENEWAL)
    assert usage_in_period(customer_id=customer.pk, start=start, end=end).total == 6
    threads[0].join()


def flush_then_close():
    try:
        flush_usage()
    finally:
        connection.close()
