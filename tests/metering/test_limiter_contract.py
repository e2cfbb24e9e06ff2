"""One contract, two backends: MemoryLimiter and RedisLimiter decide alike,
RedisLimiter both on its fast path and on redis-py's public API.

The time is passed in, so nothing sleeps. NOW_MS is 2027-01-15 08:00:00 UTC,
a whole minute, 16 days and 16 hours before the end of its calendar month.
"""

import dataclasses
import threading
from datetime import UTC, datetime

import pytest
import redis
from django.conf import settings
from django_redis import get_redis_connection

from apikeys.context import KeyContext
from metering.limiter import Limiter, Limits, MemoryLimiter, Reason, RedisLimiter
from metering.throttling import limits_for
from plans.periods import period_bounds

# The embedded limiter writes each refusal to the database as it refuses
# (there is no Redis to count it in); the customers here have no row, so none stays.
pytestmark = pytest.mark.django_db

NOW_MS = 1_800_000_000_000
SECONDS_TO_MONTH_END = 16 * 86_400 + 16 * 3_600


def make_limits(
    *,
    customer_id=1,
    burst=5,
    quota=1_000,
    period="month",
    now_ms=NOW_MS,
    hard_quota=True,
    overage_ceiling=None,
):
    start, end = period_bounds(period, datetime.fromtimestamp(now_ms / 1000, UTC))
    return Limits(
        customer_id=customer_id,
        burst=burst,
        quota=quota,
        period_start=start,
        period_end=end,
        hard_quota=hard_quota,
        overage_ceiling=overage_ceiling,
    )


def admitted(limiter, limits, attempts, *, now_ms=NOW_MS, cost=1):
    """How many of `attempts` back-to-back checks were admitted."""
    return sum(limiter.check(limits, cost=cost, now_ms=now_ms).admitted for _ in range(attempts))


def key_context(*, key_id, customer_id):
    return KeyContext(
        key_id=key_id,
        key_prefix=f"tk_live_{key_id}",
        customer_id=customer_id,
        user_id=customer_id,
        scopes=("api",),
        revoked=False,
        expires_at=None,
        tier_slug="free",
        quota=3,
        quota_period="month",
        burst=100,
        hard_quota=True,
        overage_ceiling=None,
        billing_period_start=None,
        billing_period_end=None,
        suspended_from=None,
    )


@pytest.fixture(params=["memory", "redis", "redis, public path", "redis cluster"])
def limiter(request):
    if request.param == "memory":
        return MemoryLimiter()
    if request.param == "redis, public path":
        request.getfixturevalue("public_redis_path")
    if request.param == "redis cluster":
        request.getfixturevalue("on_redis_cluster")
    return RedisLimiter(get_redis_connection("default"))


def test_each_backend_is_a_limiter(limiter):
    assert isinstance(limiter, Limiter)


def test_a_limits_holds_only_its_fields_until_a_derived_value_is_read():
    limits = make_limits()
    assert set(vars(limits)) == {field.name for field in dataclasses.fields(Limits)}
    assert limits.period_end_ms == NOW_MS + SECONDS_TO_MONTH_END * 1000
    assert "period_end_ms" in vars(limits)  # cached for the period


def test_it_admits_exactly_the_burst_back_to_back(limiter):
    assert admitted(limiter, make_limits(burst=5), 5) == 5


def test_it_denies_the_request_after_the_burst(limiter):
    limits = make_limits(burst=5)
    admitted(limiter, limits, 5)
    assert limiter.check(limits, now_ms=NOW_MS).reason == Reason.BURST


def test_one_more_request_fits_after_one_interval(limiter):
    limits = make_limits(burst=5)
    admitted(limiter, limits, 5)
    assert admitted(limiter, limits, 2, now_ms=NOW_MS + 200) == 1


def test_no_request_fits_a_millisecond_before_the_interval(limiter):
    limits = make_limits(burst=5)
    admitted(limiter, limits, 5)
    assert admitted(limiter, limits, 1, now_ms=NOW_MS + 199) == 0


def test_the_whole_burst_is_back_after_a_second(limiter):
    limits = make_limits(burst=5)
    admitted(limiter, limits, 5)
    assert admitted(limiter, limits, 6, now_ms=NOW_MS + 1000) == 5


def test_a_burst_denial_waits_exactly_one_interval(limiter):
    limits = make_limits(burst=5)
    admitted(limiter, limits, 5)
    assert limiter.check(limits, now_ms=NOW_MS).burst_wait_ms == 200


def test_a_burst_denial_rounds_the_wait_up_to_a_whole_millisecond(limiter):
    limits = make_limits(burst=3)
    admitted(limiter, limits, 3)
    assert limiter.check(limits, now_ms=NOW_MS).burst_wait_ms == 334


def test_a_retry_after_the_rounded_wait_fits(limiter):
    limits = make_limits(burst=3)
    admitted(limiter, limits, 3)
    assert admitted(limiter, limits, 1, now_ms=NOW_MS + 333) == 0
    assert admitted(limiter, limits, 1, now_ms=NOW_MS + 334) == 1


def test_a_burst_denial_asks_to_retry_after_a_whole_second(limiter):
    limits = make_limits(burst=5)
    admitted(limiter, limits, 5)
    assert limiter.check(limits, now_ms=NOW_MS).retry_after_seconds == 1


def test_a_burst_of_one_denial_waits_the_whole_second(limiter):
    limits = make_limits(burst=1)
    limiter.check(limits, now_ms=NOW_MS)
    decision = limiter.check(limits, now_ms=NOW_MS + 1)
    assert (decision.burst_wait_ms, decision.retry_after_seconds) == (999, 1)


def test_it_admits_exactly_the_quota_in_a_period(limiter):
    limits = make_limits(burst=100, quota=7)
    assert admitted(limiter, limits, 10) == 7


def test_it_denies_the_request_after_the_quota(limiter):
    limits = make_limits(burst=100, quota=7)
    admitted(limiter, limits, 7)
    assert limiter.check(limits, now_ms=NOW_MS).reason == Reason.QUOTA


def test_a_quota_denial_asks_to_retry_at_the_period_end(limiter):
    limits = make_limits(quota=1)
    limiter.check(limits, now_ms=NOW_MS)
    decision = limiter.check(limits, now_ms=NOW_MS + 1000)
    assert decision.retry_after_seconds == SECONDS_TO_MONTH_END - 1


def test_a_quota_denial_rounds_the_seconds_to_the_period_end_up(limiter):
    limits = make_limits(quota=1)
    limiter.check(limits, now_ms=NOW_MS)
    decision = limiter.check(limits, now_ms=NOW_MS + 1)
    assert decision.retry_after_seconds == SECONDS_TO_MONTH_END


def test_a_new_period_starts_from_zero(limiter):
    admitted(limiter, make_limits(quota=3, period="minute"), 3)
    next_minute = make_limits(quota=3, period="minute", now_ms=NOW_MS + 60_000)
    assert admitted(limiter, next_minute, 4, now_ms=NOW_MS + 60_000) == 3


def test_the_last_millisecond_of_a_period_still_counts_against_it(limiter):
    admitted(limiter, make_limits(quota=3, period="minute"), 3)
    last_ms = NOW_MS + 59_999
    limits = make_limits(quota=3, period="minute", now_ms=last_ms)
    assert limiter.check(limits, now_ms=last_ms).reason == Reason.QUOTA


def test_a_request_of_cost_n_uses_n_quota_units(limiter):
    assert limiter.check(make_limits(quota=10), cost=4, now_ms=NOW_MS).quota_used == 4


def test_a_request_of_cost_n_uses_one_burst_slot(limiter):
    assert admitted(limiter, make_limits(burst=5), 6, cost=10) == 5


def test_a_cost_that_does_not_fit_the_remaining_quota_is_denied(limiter):
    limits = make_limits(quota=10)
    limiter.check(limits, cost=8, now_ms=NOW_MS)
    assert limiter.check(limits, cost=3, now_ms=NOW_MS).reason == Reason.QUOTA


def test_a_cost_that_does_not_fit_consumes_nothing(limiter):
    limits = make_limits(quota=10)
    limiter.check(limits, cost=8, now_ms=NOW_MS)
    limiter.check(limits, cost=3, now_ms=NOW_MS)
    assert limiter.check(limits, cost=2, now_ms=NOW_MS).quota_used == 10


def test_a_request_of_cost_zero_is_admitted_over_the_quota(limiter):
    """A downgrade can leave more used than the new quota: a request that
    costs nothing (the usage API) is still answered."""
    limiter.check(make_limits(quota=10), cost=8, now_ms=NOW_MS)
    assert limiter.check(make_limits(quota=5), cost=0, now_ms=NOW_MS).admitted


def test_a_request_of_cost_zero_still_counts_against_the_burst(limiter):
    limits = make_limits(burst=2, quota=1)
    limiter.check(limits, cost=1, now_ms=NOW_MS)
    assert admitted(limiter, limits, 3, cost=0) == 1


def test_a_soft_quota_admits_requests_over_the_quota(limiter):
    assert admitted(limiter, make_limits(quota=3, hard_quota=False), 5) == 5


def test_a_soft_quota_keeps_counting_the_overage(limiter):
    limits = make_limits(quota=3, hard_quota=False)
    admitted(limiter, limits, 4)
    decision = limiter.check(limits, now_ms=NOW_MS)
    assert (decision.quota_used, decision.quota_remaining) == (5, 0)


def test_a_spending_cap_stops_the_overage_at_its_ceiling(limiter):
    limits = make_limits(burst=100, quota=3, hard_quota=False, overage_ceiling=5)
    assert admitted(limiter, limits, 8) == 5
    decision = limiter.check(limits, now_ms=NOW_MS)
    assert (decision.admitted, decision.reason, decision.quota_used) == (False, Reason.QUOTA, 5)


def test_a_spending_cap_of_zero_makes_the_quota_hard(limiter):
    assert admitted(limiter, make_limits(burst=100, quota=3, hard_quota=False, overage_ceiling=3), 5) == 3


def test_a_soft_quota_still_enforces_the_burst(limiter):
    assert admitted(limiter, make_limits(burst=2, quota=1, hard_quota=False), 3) == 2


def test_a_burst_denial_consumes_no_quota(limiter):
    limits = make_limits(burst=2)
    admitted(limiter, limits, 5)
    assert limiter.check(limits, now_ms=NOW_MS + 1000).quota_used == 3


def test_a_quota_denial_consumes_no_burst(limiter):
    admitted(limiter, make_limits(burst=5, quota=2), 4)
    upgraded = make_limits(burst=5, quota=100)
    assert admitted(limiter, upgraded, 5) == 3


def test_two_customers_have_independent_bursts(limiter):
    admitted(limiter, make_limits(customer_id=1, burst=2), 2)
    assert admitted(limiter, make_limits(customer_id=2, burst=2), 3) == 2


def test_two_customers_have_independent_quotas(limiter):
    admitted(limiter, make_limits(customer_id=1, quota=2), 2)
    assert limiter.check(make_limits(customer_id=2, quota=2), now_ms=NOW_MS).quota_used == 1


def test_an_admitted_request_reports_the_quota_remaining(limiter):
    limits = make_limits(quota=10)
    limiter.check(limits, now_ms=NOW_MS)
    assert limiter.check(limits, cost=3, now_ms=NOW_MS).quota_remaining == 6


def test_an_admitted_request_reports_the_burst_remaining(limiter):
    limits = make_limits(burst=5)
    limiter.check(limits, now_ms=NOW_MS)
    assert limiter.check(limits, now_ms=NOW_MS).burst_remaining == 3


def test_a_burst_denial_reports_no_burst_remaining(limiter):
    limits = make_limits(burst=2)
    admitted(limiter, limits, 2)
    assert limiter.check(limits, now_ms=NOW_MS).burst_remaining == 0


def test_the_burst_remaining_refills_with_time(limiter):
    limits = make_limits(burst=5)
    admitted(limiter, limits, 5)
    assert limiter.check(limits, now_ms=NOW_MS + 400).burst_remaining == 1


def test_an_admitted_request_asks_for_no_retry(limiter):
    assert limiter.check(make_limits(), now_ms=NOW_MS).retry_after_seconds == 0


def test_all_keys_of_a_customer_share_one_quota(limiter):
    now = datetime.fromtimestamp(NOW_MS / 1000, UTC)
    laptop, server = key_context(key_id=1, customer_id=7), key_context(key_id=2, customer_id=7)
    admitted(limiter, limits_for(laptop, now), 2)
    assert admitted(limiter, limits_for(server, now), 2) == 1


@pytest.mark.parametrize("burst", [3, 6, 7, 11])
def test_a_burst_that_does_not_divide_a_second_admits_exactly_burst_each_second(limiter, burst):
    limits = make_limits(burst=burst, quota=10_000)
    per_second = [admitted(limiter, limits, burst + 2, now_ms=NOW_MS + 7 + 1000 * s) for s in range(30)]
    assert per_second == [burst] * 30


def test_requests_paced_at_the_burst_rate_are_all_admitted(limiter):
    limits = make_limits(burst=3, quota=10_000)
    paced = [NOW_MS + -(-1000 * n // 3) for n in range(300)]  # 334 ms, 333 ms, 333 ms, ...
    assert sum(limiter.check(limits, now_ms=t).admitted for t in paced) == 300


def run_concurrently(check, *, threads, attempts):
    """Run `attempts` calls of check() on `threads` threads released together;
    return how many were admitted."""
    barrier = threading.Barrier(threads)
    results = []

    def worker(calls):
        barrier.wait()
        results.extend(check() for _ in range(calls))

    calls = [attempts // threads + (i < attempts % threads) for i in range(threads)]
    workers = [threading.Thread(target=worker, args=(n,)) for n in calls]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert len(results) == attempts
    return sum(results)


def test_concurrent_checks_on_the_memory_limiter_admit_exactly_the_quota():
    limiter, limits = MemoryLimiter(), make_limits(burst=100_000, quota=100)

    def check():
        return limiter.check(limits, now_ms=NOW_MS).admitted

    assert run_concurrently(check, threads=32, attempts=400) == 100


def test_concurrent_checks_from_many_redis_clients_admit_exactly_the_quota():
    limits = make_limits(burst=100_000, quota=100)
    local = threading.local()
    clients = []

    def check():
        if not hasattr(local, "limiter"):
            client = redis.Redis.from_url(settings.REDIS_URL)
            clients.append(client)
            local.limiter = RedisLimiter(client)
        return local.limiter.check(limits, now_ms=NOW_MS).admitted

    try:
        assert run_concurrently(check, threads=32, attempts=400) == 100
        assert len(clients) == 32
    finally:
        for client in clients:
            client.close()


def test_concurrent_checks_from_many_cluster_clients_admit_exactly_the_quota(on_redis_cluster):
    limits = make_limits(burst=100_000, quota=100)
    local = threading.local()
    clients = []

    def check():
        if not hasattr(local, "limiter"):
            client = on_redis_cluster.client()
            clients.append(client)
            local.limiter = RedisLimiter(client)
        return local.limiter.check(limits, now_ms=NOW_MS).admitted

    try:
        assert run_concurrently(check, threads=16, attempts=400) == 100
        assert len(clients) == 16
    finally:
        for client in clients:
            client.close()


def test_a_missing_counter_asks_for_a_seed(limiter):
    assert limiter.check(make_limits(), now_ms=NOW_MS, seed=None).reason == Reason.NEEDS_SEED


def test_a_seeded_counter_continues_from_the_seed(limiter):
    decision = limiter.check(make_limits(quota=100), now_ms=NOW_MS, seed=99)
    assert (decision.admitted, decision.quota_used) == (True, 100)
    assert limiter.check(make_limits(quota=100), now_ms=NOW_MS + 1000, seed=None).reason == Reason.QUOTA
