"""core.breaker: after one failure, calls fail fast for the backoff; then one
probe at a time; a success closes it. Logged once per outage."""

import logging

from core.breaker import Breaker
from tests.utils import FakeClock


def test_a_closed_breaker_allows_every_call():
    breaker = Breaker("Redis", backoff=1.0, clock=FakeClock())
    assert all(breaker.allow() for _ in range(3))


def test_after_a_failure_calls_fail_fast_until_the_backoff_ends():
    clock = FakeClock()
    breaker = Breaker("Redis", backoff=1.0, clock=clock)
    breaker.failed(TimeoutError("no answer"))
    clock.now += 0.9
    assert not breaker.allow()


def test_after_the_backoff_one_call_probes_and_the_others_still_fail_fast():
    clock = FakeClock()
    breaker = Breaker("Redis", backoff=1.0, clock=clock)
    breaker.failed(TimeoutError("no answer"))
    clock.now += 1.0
    assert [breaker.allow(), breaker.allow()] == [True, False]


def test_a_probe_that_succeeds_closes_it():
    clock = FakeClock()
    breaker = Breaker("Redis", backoff=1.0, clock=clock)
    breaker.failed(TimeoutError("no answer"))
    clock.now += 1.0
    breaker.allow()
    breaker.succeeded()
    assert breaker.allow() and breaker.allow()


def test_a_probe_that_fails_opens_it_for_another_backoff():
    clock = FakeClock()
    breaker = Breaker("Redis", backoff=1.0, clock=clock)
    breaker.failed(TimeoutError("no answer"))
    clock.now += 1.0
    breaker.allow()
    breaker.failed(TimeoutError("still no answer"))
    clock.now += 0.5
    assert not breaker.allow()


def test_an_outage_is_logged_twice_whatever_the_number_of_calls(caplog):
    clock = FakeClock()
    breaker = Breaker("Redis 127.0.0.1:1", backoff=1.0, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="core.breaker"):
        for _ in range(3):
            breaker.failed(TimeoutError("no answer"))
            for _ in range(10):
                breaker.allow()
            clock.now += 1.0
        breaker.allow()
        breaker.succeeded()
        breaker.succeeded()
    assert [(r.levelname, r.exc_info) for r in caplog.records] == [("ERROR", None), ("WARNING", None)]
    assert "unreachable (TimeoutError: no answer)" in caplog.records[0].getMessage()
    assert "answers again after 3.0 s; 30 calls failed fast" in caplog.records[1].getMessage()


def test_a_probe_longer_than_the_backoff_keeps_the_others_failing_fast_while_it_runs():
    clock = FakeClock()
    breaker = Breaker("PostgreSQL", backoff=1.0, clock=clock)
    breaker.failed(TimeoutError("no answer"))
    clock.now += 1.0
    assert breaker.allow(probe_seconds=3.5)
    clock.now += 3.0
    assert not breaker.allow(probe_seconds=3.5)
