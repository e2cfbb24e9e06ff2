"""One scheduler: two Celery beats (a second started by mistake, or two during
a deploy) each send every periodic task; each task runs once per interval all
the same (core.periodic), and one flush at a time moves usage (metering.flush)."""

import threading

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from django_redis import get_redis_connection

from billing.models import UsageReconcileRun
from metering import flush
from metering.flush import FlushResult, flush_usage
from metering.keys import pending_key
from metering.tasks import flush_usage_task
from tests.metering.test_flush import recorded, serve
from tests.utils import run_together

BEAT_ENTRIES = sorted(settings.CELERY_BEAT_SCHEDULE)


@pytest.fixture
def redis():
    return get_redis_connection("default")


def beat_task(entry: str):
    return current_app.tasks[settings.CELERY_BEAT_SCHEDULE[entry]["task"]]


@pytest.mark.django_db
@pytest.mark.parametrize("entry", BEAT_ENTRIES)
def test_a_second_beats_run_within_the_interval_is_skipped(entry, default_tiers):
    task = beat_task(entry)
    assert task() is not None
    assert task() is None


@pytest.mark.django_db
@pytest.mark.parametrize("entry", BEAT_ENTRIES)
def test_a_run_claims_its_task_for_half_its_interval(entry, default_tiers, redis):
    """Half: a second beat's runs are skipped however far its schedule is
    from the first's, and one beat's own runs, an interval apart, never are."""
    beat_task(entry)()
    interval_ms = settings.CELERY_BEAT_SCHEDULE[entry]["schedule"] * 1000
    assert 0 < redis.pttl(f"periodic:v1:claim:{{{entry}}}") <= interval_ms / 2


@pytest.mark.django_db
def test_the_next_interval_runs_again_once_the_claim_expired(default_tiers, redis):
    task = beat_task("reconcile-usage")
    task()
    redis.delete("periodic:v1:claim:{reconcile-usage}")  # as its expiry would
    assert task() is not None
    assert UsageReconcileRun.objects.count() == 2


@pytest.mark.django_db
def test_a_second_beats_flush_leaves_the_usage_for_the_next_interval(redis, customer, api_key):
    serve(api_key, 3)
    assert flush_usage_task() == {"customers": 1, "units": 3}
    serve(api_key, 2)
    assert flush_usage_task() is None
    assert (recorded(customer), redis.exists(pending_key(customer.pk))) == (3, 1)


@pytest.mark.django_db
def test_a_second_beats_usage_reconcile_records_no_second_run(default_tiers):
    reconcile = beat_task("reconcile-usage")
    reconcile()
    reconcile()
    assert UsageReconcileRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("entry", BEAT_ENTRIES)
def test_of_runs_sent_at_once_exactly_one_runs(entry, default_tiers):
    results = run_together(4, beat_task(entry))
    assert len([result for result in results if result is not None]) == 1


@pytest.mark.django_db(transaction=True)
def test_a_flush_started_while_another_runs_moves_nothing(redis, customer, api_key, monkeypatch):
    """The first flush holds the flush lock while it moves (here: stopped
    between its apply and its discard); a second, from the command or a
    beat, is skipped rather than racing it for the same customers."""
    serve(api_key, 3)
    applied, resume = threading.Event(), threading.Event()
    discard = flush.discard_snapshots

    def discard_later(client, batches):
        applied.set()
        resume.wait(timeout=30)  # only a guard against a hang: the test sets it at once
        discard(client, batches)

    monkeypatch.setattr(flush, "discard_snapshots", discard_later)
    first = []
    runner = threading.Thread(target=lambda: (first.append(flush_usage()), connection.close()))
    runner.start()
    try:
        assert applied.wait(timeout=30)
        second = flush_usage()
    finally:
        resume.set()
        runner.join()
    assert (first, second) == ([FlushResult(customers=1, units=3)], FlushResult(0, 0, skipped=True))
    assert recorded(customer) == 3


@pytest.mark.django_db(transaction=True)
def test_the_flush_lock_is_free_after_a_flush(redis, customer, api_key):
    serve(api_key, 3)
    flush_usage()
    serve(api_key, 2)
    assert flush_usage() == FlushResult(customers=1, units=2)
