"""The RedisLimiter when its Redis misbehaves, against a private redis-server.

Each test starts its own throwaway server (no persistence) on a free port, so
killing, stalling or restarting it disturbs no one else's Redis. The `limiter`
tests run on both paths of metering/limiter/wire.py; `fast_limiter` ones test
the connection the fast path keeps per thread.
"""

import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis
import time_machine

from core.breaker import breakers_reset
from metering.keys import idempotency_record, pending_key
from metering.limiter import ClaimOutcome, LimiterUnavailable, Limits, RedisLimiter, SettleRequest
from metering.limiter.redis_backend import CHECK_AND_RESERVE
from plans.periods import period_bounds

FIRST_PORT = 6391
TIMEOUT_SECONDS = 0.2
SCRIPT_SHA = hashlib.sha1(CHECK_AND_RESERVE.encode()).hexdigest()


def port_is_free(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


class RedisServer:
    """A redis-server child process that a test may kill, stall and restart."""

    def __init__(self, directory, persistence=("--save", "", "--appendonly", "no")):
        self.directory = directory
        self.persistence = list(persistence)
        self.port = None
        self.process = None

    def start(self, port=None):
        candidates = [port] if port else [p for p in range(FIRST_PORT, FIRST_PORT + 100) if port_is_free(p)]
        for candidate in candidates:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(candidate), "--bind", "127.0.0.1", *self.persistence]
                + ["--enable-debug-command", "local"],
                cwd=self.directory,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_until_ready(candidate):
                self.port = candidate
                return
            self.kill()  # lost the port to someone else: try the next one
        raise RuntimeError("could not start a private redis-server")

    def _wait_until_ready(self, port):
        client = redis.Redis(port=port, socket_connect_timeout=0.1)
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    # Ours, not a server someone else started on the port meanwhile.
                    return client.info("server")["process_id"] == self.process.pid
                except redis.ConnectionError:
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def sleep_in_background(self, seconds):
        """DEBUG SLEEP: Redis stalls, then runs what was queued meanwhile (as
        after a slow fork or a long script). Join the thread to wait until it woke."""
        sleeper = threading.Thread(
            target=redis.Redis(port=self.port).execute_command, args=("DEBUG", "SLEEP", seconds)
        )
        sleeper.start()
        time.sleep(0.05)  # the DEBUG SLEEP reaches Redis before the caller's next command
        return sleeper


def limiter_on(port):
    # Built as django-redis builds the project's client: over an explicit
    # connection pool, which leaves redis-py's client-level retries off (a
    # bare redis.Redis() retries ten times with backoff, ~4.5 s per failure).
    pool = redis.ConnectionPool(
        host="127.0.0.1", port=port, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )
    return RedisLimiter(redis.Redis(connection_pool=pool))


def make_limits():
    start, end = period_bounds("month", datetime.now(UTC))
    return Limits(customer_id=1, burst=100, quota=1_000, period_start=start, period_end=end)


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture(autouse=True)
def no_backoff(settings):
    """Each test here kills or stalls its own server and calls again at once:
    without a backoff, the breaker (core.breaker) lets every call try."""
    settings.REDIS_DOWN_BACKOFF_SECONDS = 0
    breakers_reset()
    yield
    breakers_reset()


@pytest.fixture
def server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture(params=["fast path", "public path"])
def limiter(request, server):
    if request.param == "public path":
        request.getfixturevalue("public_redis_path")
    return limiter_on(server.port)


@pytest.fixture
def fast_limiter(server):
    return limiter_on(server.port)


def test_a_check_works_after_the_script_cache_is_flushed(server, limiter):
    limiter.check(make_limits(), now_ms=now_ms())
    redis.Redis(port=server.port).script_flush()
    assert limiter.check(make_limits(), now_ms=now_ms()).quota_used == 2


def test_a_check_raises_limiter_unavailable_once_redis_is_killed(server, limiter):
    limiter.check(make_limits(), now_ms=now_ms())
    server.kill()
    with pytest.raises(LimiterUnavailable):
        limiter.check(make_limits(), now_ms=now_ms())


def test_checks_work_again_after_redis_restarts_on_the_same_port(server, limiter):
    limiter.check(make_limits(), now_ms=now_ms())
    server.kill()
    with pytest.raises(LimiterUnavailable):
        limiter.check(make_limits(), now_ms=now_ms())
    server.start(server.port)
    assert limiter.check(make_limits(), now_ms=now_ms()).admitted


def test_a_restarted_redis_gets_the_script_loaded_again(server, limiter):
    limiter.check(make_limits(), now_ms=now_ms())
    server.kill()
    server.start(server.port)
    admin = redis.Redis(port=server.port)
    assert admin.script_exists(SCRIPT_SHA) == [False]
    limiter.check(make_limits(), now_ms=now_ms())
    assert admin.script_exists(SCRIPT_SHA) == [True]


def test_a_settle_works_after_the_script_cache_is_flushed(server, limiter):
    decision = limiter.check(make_limits(), now_ms=now_ms())
    redis.Redis(port=server.port).script_flush()
    settlement = limiter.settle(SettleRequest(decision, True, False, 1, "u|0|1|echo", None))
    assert (settlement.billed, settlement.used) == (False, 0)


def test_a_settle_raises_limiter_unavailable_once_redis_is_killed(server, limiter):
    decision = limiter.check(make_limits(), now_ms=now_ms())
    server.kill()
    request = SettleRequest(decision, False, True, 1, "u|0|1|echo", None)
    with pytest.raises(LimiterUnavailable):
        limiter.settle(request)


def test_a_stalled_redis_raises_limiter_unavailable_within_the_timeout(server, limiter):
    limiter.check(make_limits(), now_ms=now_ms())
    server.pause()
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable):
        limiter.check(make_limits(), now_ms=now_ms())
    assert time.monotonic() - started < 2 * TIMEOUT_SECONDS + 0.3


def test_a_limiter_pointing_where_nothing_listens_raises_limiter_unavailable_quickly(tmp_path):
    port = next(p for p in range(FIRST_PORT + 100, FIRST_PORT + 200) if port_is_free(p))
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable):
        limiter_on(port).check(make_limits(), now_ms=now_ms())
    assert time.monotonic() - started < 1


def client_ids(server):
    """Redis's ids of the connections open on the server."""
    return {entry["id"] for entry in redis.Redis(port=server.port).client_list()}


def test_each_thread_checks_on_a_connection_of_its_own_and_keeps_it(server, fast_limiter):
    import threading

    fast_limiter.check(make_limits(), now_ms=now_ms())  # connects (and loads the script)
    warm = client_ids(server)
    for _ in range(5):
        fast_limiter.check(make_limits(), now_ms=now_ms())
    same_thread = client_ids(server)
    assert len(same_thread - warm) == 1  # only client_ids' own probe: the checks reused one
    checked, done = threading.Event(), threading.Event()

    def other_thread():
        fast_limiter.check(make_limits(), now_ms=now_ms())
        checked.set()
        done.wait(5)  # alive while we look: its connection lives as long as the thread

    thread = threading.Thread(target=other_thread)
    thread.start()
    checked.wait(5)
    try:
        assert len(client_ids(server) - same_thread) == 2  # the other thread's connection, and the probe
    finally:
        done.set()
        thread.join()


def test_a_forked_child_does_not_share_its_parents_connection(server, fast_limiter):
    import multiprocessing

    fast_limiter.check(make_limits(), now_ms=now_ms())
    LIMITER_BY_PORT[server.port] = fast_limiter  # the child inherits it by the fork
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        used = pool.apply(_child_check, (server.port,))
    assert used == 2  # parent and child each counted once: no reply read by the wrong process
    assert fast_limiter.check(make_limits(), now_ms=now_ms()).quota_used == 3


def _child_check(port):
    from metering.limiter.wire import _thread_connection

    parent_connection = _thread_connection.connection
    decision = LIMITER_BY_PORT[port].check(make_limits(), now_ms=now_ms())
    assert _thread_connection.connection is not parent_connection
    return decision.quota_used


LIMITER_BY_PORT = {}


def test_threads_coming_and_going_never_use_up_the_clients_pool(server):
    import threading

    pool = redis.ConnectionPool(host="127.0.0.1", port=server.port, max_connections=2)
    limiter = RedisLimiter(redis.Redis(connection_pool=pool))
    limiter.check(make_limits(), now_ms=now_ms())  # loads the script through the pool
    errors = []

    def check():
        try:
            limiter.check(make_limits(), now_ms=now_ms())
        except Exception as error:
            errors.append(error)

    for _ in range(10):
        thread = threading.Thread(target=check)
        thread.start()
        thread.join()
    assert errors == []
    assert redis.Redis(connection_pool=pool).ping()


def test_a_connection_the_server_closed_is_replaced_without_an_error(server, fast_limiter):
    fast_limiter.check(make_limits(), now_ms=now_ms())
    admin = redis.Redis(port=server.port)
    killed = admin.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert fast_limiter.check(make_limits(), now_ms=now_ms()).quota_used == 2


class ChattyConnection(redis.Connection):
    """Leaves a reply unread on every new connection, so that each one reads as
    "closed or dirty" the moment it is made."""

    def on_connect_check_health(self, check_health=True):
        super().on_connect_check_health(check_health=check_health)
        self.send_command("PING")
        time.sleep(0.01)  # let the reply arrive


def test_a_connection_that_is_dirty_when_made_gives_limiter_unavailable_not_a_loop(server):
    pool = redis.ConnectionPool(
        connection_class=ChattyConnection,
        host="127.0.0.1",
        port=server.port,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
    )
    limiter = RedisLimiter(redis.Redis(connection_pool=pool))
    with pytest.raises(LimiterUnavailable, match="closed a new connection"):
        limiter.check(make_limits(), now_ms=now_ms())


FIELD = "u|0|1|echo"


def test_a_check_that_timed_out_while_redis_slept_is_not_billed_when_redis_runs_it_late(server, limiter):
    limits = make_limits()
    limiter.check(limits, now_ms=now_ms(), bill_field=FIELD)
    sleeper = server.sleep_in_background(1)
    with pytest.raises(LimiterUnavailable):  # the caller answers 503
        limiter.check(limits, now_ms=now_ms(), bill_field=FIELD)
    sleeper.join()  # Redis woke and ran the queued check, past its deadline
    admin = redis.Redis(port=server.port)
    assert admin.hget(pending_key(limits.customer_id), FIELD) == b"1"
    assert admin.get(limits.redis_keys[1]) == b"1"
    assert limiter.check(limits, now_ms=now_ms(), bill_field=FIELD).quota_used == 2


def test_a_settle_that_timed_out_is_not_applied_when_redis_runs_it_late(server, limiter):
    limits = make_limits()
    decision = limiter.check(limits, now_ms=now_ms(), bill_field=FIELD)  # billed optimistically
    unbill = SettleRequest(decision, True, False, 1, FIELD, None)  # ... and the view failed
    limiter.settle(SettleRequest(limiter.check(limits, now_ms=now_ms()), False, False, 1, FIELD, None))
    sleeper = server.sleep_in_background(1)
    with pytest.raises(LimiterUnavailable):
        limiter.settle(unbill)
    sleeper.join()
    admin = redis.Redis(port=server.port)
    # Not applied late: the caller retries it (metering.tasks), and it applies once.
    assert admin.hget(pending_key(limits.customer_id), FIELD) == b"1"
    assert limiter.settle(unbill).billed is False
    assert admin.hget(pending_key(limits.customer_id), FIELD) is None
    assert admin.get(limits.redis_keys[1]) == b"0"


def test_a_claim_that_timed_out_does_not_hold_the_key_when_redis_runs_it_late(server, limiter):
    limiter.claim(idempotency_record(1, "order-0"), fingerprint="f", token="t", now_ms=now_ms())
    sleeper = server.sleep_in_background(1)
    with pytest.raises(LimiterUnavailable):
        limiter.claim(idempotency_record(1, "order-1"), fingerprint="f", token="t", now_ms=now_ms())
    sleeper.join()
    # The client was answered 503; its retry with the same key must run, not get a 409.
    claim = limiter.claim(idempotency_record(1, "order-1"), fingerprint="f", token="t2", now_ms=now_ms())
    assert claim.outcome == ClaimOutcome.CLAIMED


@pytest.mark.parametrize("travel_to", ["2020-02-29 23:59:59", "2028-01-31 12:00:00"])
def test_a_clock_far_from_redis_clock_does_not_make_checks_late(server, limiter, travel_to):
    """The deadline is in Redis's clock: a host clock years off (a test's
    time-machine, a wrong NTP) neither refuses checks nor lets late ones in."""
    # The offset is measured on the real clock first (another customer: no shared burst state).
    limiter.check(replace(make_limits(), customer_id=2), now_ms=now_ms())
    with time_machine.travel(datetime.fromisoformat(travel_to).replace(tzinfo=UTC), tick=False):
        limits = make_limits()
        assert limiter.check(limits, now_ms=now_ms(), bill_field=FIELD).admitted
        time.sleep(0.3)  # the frozen wall clock now lags the monotonic one
        assert limiter.check(limits, now_ms=now_ms(), bill_field=FIELD).quota_used == 2


def test_after_a_failed_call_the_next_ones_fail_fast_until_the_backoff_ends(server, limiter, settings):
    settings.REDIS_DOWN_BACKOFF_SECONDS = 60
    breakers_reset()
    limiter.check(make_limits(), now_ms=now_ms())
    server.pause()
    with pytest.raises(LimiterUnavailable, match="timed out|Timeout"):
        limiter.check(make_limits(), now_ms=now_ms())
    server.resume()  # answering again, but the backoff has not ended
    with pytest.raises(LimiterUnavailable, match="failing fast"):
        limiter.check(make_limits(), now_ms=now_ms())
