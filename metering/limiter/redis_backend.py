"""The limiter on Redis: one EVALSHA of metering/lua/check_and_reserve.lua per
check, and settle.lua when the check's billing guess must change.

All of a customer's keys carry the hash tag `{c<id>}` (metering/keys.py), so
each script touches one cluster slot and runs unchanged on Redis Cluster.

A check whose reply never came may still have run (Redis stalled after
running it, before writing the reply): the check leaves a witness token in
the customer's pending hash, and the process cancels such a check by its
token (cancel_check.lua) before its next call once Redis answers.

Every script call carries a deadline in Redis's clock: four fifths of the
socket timeout after it is sent. A call that reaches Redis later (Redis
stalled, the caller's read timed out and it answered 503 or will retry)
changes nothing, so a refused request is never billed and a retried settle
never applies twice. The last fifth (100 ms of the default 0.5 s) is for the
reply of a call run just in time to reach the caller before it gives up:
Redis writes replies once per event loop turn, after the other clients'
commands of that turn.
"""

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from django.core.cache import caches

from core.breaker import Breaker, redis_breaker
from core.redis_cluster import REDIS_UNAVAILABLE, connection_settings, is_cluster

from .contract import (
    PENDING_TTL_MS,
    QUOTA_TTL_SLACK_MS,
    Claim,
    ClaimedKey,
    ClaimOutcome,
    Decision,
    LimiterUnavailable,
    Limits,
    Reason,
    Settlement,
    SettleRequest,
    idempotency_claim_ms,
    idempotency_ttl_seconds,
)
from .replication import replica_acks, run_replicated
from .wire import LineScript, Prepared

logger = logging.getLogger(__name__)

LUA_DIR = Path(__file__).parent.parent / "lua"
CHECK_AND_RESERVE = (LUA_DIR / "check_and_reserve.lua").read_text()
SETTLE = (LUA_DIR / "settle.lua").read_text()
IDEMPOTENCY_CLAIM = (LUA_DIR / "idempotency_claim.lua").read_text()
CANCEL_CHECK = (LUA_DIR / "cancel_check.lua").read_text()

# check_and_reserve's ARGV: 5 the same all period (see _prepare), then 6 per request.
_check_script = LineScript(CHECK_AND_RESERVE, per_call=6)
_UNANSWERED_MAX = 100_000  # checks awaiting their cancel, per process
_REASONS = tuple(Reason)
_LATE = b"4"  # check_and_reserve's reason when run past its deadline
_PREPARED_MAX = 10_000


DEADLINE_SHARE = 0.8  # of the socket timeout; see the module's docstring


class RedisClock:
    """Redis's clock read from here, without a round trip per call.

    The offset between this host's clock and Redis's is measured with TIME
    once a minute per connection pool (per client on Redis Cluster, whose
    TIME goes to one node: its nodes' clocks are taken to agree, as NTP keeps
    them, within a few milliseconds of the deadline's 160 ms), and again as soon as this host's wall
    clock jumps against its monotonic clock (an NTP step, a test's
    time-machine), so a host clock that is wrong by years still gives
    deadlines in Redis's time. The error is half the TIME round trip.
    """

    REMEASURE_SECONDS = 60.0
    JUMP_SECONDS = 0.1

    def __init__(self):
        # id(pool) -> (pool, offset ms, wall clock and monotonic clock when measured)
        self._offsets: dict[int, tuple[object, float, float, float]] = {}

    def deadline_ms(self, client) -> int:
        """The latest Redis time a call sent now may run at; 0 (none) for a
        client without a read timeout, which never gives up on a reply."""
        pool = getattr(client, "connection_pool", client)
        timeout = connection_settings(client).get("socket_timeout")
        if not timeout:
            return 0
        wall, monotonic = time.time(), time.monotonic()
        entry = self._offsets.get(id(pool))
        if (
            entry is None
            or entry[0] is not pool
            or monotonic - entry[3] > self.REMEASURE_SECONDS
            or abs((wall - entry[2]) - (monotonic - entry[3])) > self.JUMP_SECONDS
        ):
            entry = self._measure(client, pool)
            wall = entry[2]
        return int(wall * 1000 + entry[1] + timeout * DEADLINE_SHARE * 1000)

    def _measure(self, client, pool):
        sent = time.time()
        seconds, microseconds = client.time()
        received, monotonic = time.time(), time.monotonic()
        offset = seconds * 1000 + microseconds / 1000 - (sent + received) * 500
        entry = self._offsets[id(pool)] = (pool, offset, received, monotonic)
        return entry


class RedisLimiter:
    def __init__(self, client=None):
        self._fixed_client = client
        self._scripts: dict[str, object] = {}
        # Limits by id (kept alive here, so the id stays theirs) -> their packed call.
        self._prepared: dict[int, tuple[Limits, Prepared]] = {}
        self._clock = RedisClock()
        self._fixed_breaker = None
        self._unanswered: deque[_Unanswered] = deque(maxlen=_UNANSWERED_MAX)

    def check(
        self,
        limits: Limits,
        *,
        cost: int = 1,
        now_ms: int,
        seed: int | None = 0,
        bill_field: str | None = None,
    ) -> Decision:
        """See metering.limiter.Limiter.check."""
        entry = self._prepared.get(id(limits))
        prepared = entry[1] if entry is not None and entry[0] is limits else self._prepare(limits)
        args = (now_ms, cost, -1 if seed is None else seed, bill_field or "")
        witness = f"{_witness_slot()}|{os.urandom(4).hex()}" if bill_field else ""
        try:
            key = limits.redis_keys[0]
            reply = self._run(key, self._check, prepared, args, witness, key)
        except LimiterUnavailable as error:
            if witness and error.maybe_ran:
                _, quota_key, pending_key = limits.redis_keys
                self._unanswered.append(_Unanswered(quota_key, pending_key, witness, bill_field, cost))
            raise
        reason, used, remaining, wait_ms = reply.split()
        if reason == _LATE:
            raise LimiterUnavailable("the check reached Redis after its deadline")
        return Decision(limits, now_ms, _REASONS[int(reason)], int(used), int(remaining), int(wait_ms))

    def _check(self, client, prepared: Prepared, args: tuple, witness: str, key: str):
        args = (*args, self._clock.deadline_ms(client), witness)
        if witness and replica_acks():
            # A billed check: served only once replicas hold its unit.
            items = (*prepared.items, *args)
            queue = lambda pipeline: pipeline.execute_command(*items)  # noqa: E731
            return run_replicated(client, key, queue, CHECK_AND_RESERVE)
        return _check_script(client, prepared, args)

    def _prepare(self, limits: Limits) -> Prepared:
        """check_and_reserve's keys and the arguments that stay the same all
        period, packed once: a Limits lives for its period in the throttle's cache."""
        fixed = (limits.burst, limits.quota, limits.ceiling, limits.period_end_ms + QUOTA_TTL_SLACK_MS)
        prepared = _check_script.prepare(limits.redis_keys, (*fixed, PENDING_TTL_MS))
        if len(self._prepared) >= _PREPARED_MAX:
            self._prepared.clear()
        self._prepared[id(limits)] = (limits, prepared)
        return prepared

    def settle(self, request: SettleRequest) -> Settlement:
        """See metering.limiter.Limiter.settle."""
        limits = request.decision.limits
        _, quota_key, pending_key = limits.redis_keys
        claimed = request.claimed
        keys = [quota_key, pending_key, claimed.record] if claimed else [quota_key, pending_key]
        args = [
            int(request.billed_at_check),
            int(request.billable),
            request.cost,
            request.usage_field,
            PENDING_TTL_MS,
            idempotency_ttl_seconds(),
            *_kept_response(claimed),
        ]
        billed, used = self._run(quota_key, self._script, SETTLE, keys, args)
        if billed == -1:
            raise LimiterUnavailable("the settle reached Redis after its deadline")
        return Settlement(bool(billed), used)

    def claim(self, record: str, *, fingerprint: str, token: str, now_ms: int) -> Claim:
        """See metering.limiter.Limiter.claim. Redis times the claim itself (PEXPIRE)."""
        args = [fingerprint, token, idempotency_claim_ms()]
        outcome, *rest = self._run(record, self._script, IDEMPOTENCY_CLAIM, [record], args)
        if outcome == b"late":
            raise LimiterUnavailable("the claim reached Redis after its deadline")
        outcome = ClaimOutcome(outcome.decode())
        if outcome == ClaimOutcome.IN_USE:
            return Claim(outcome, retry_after_ms=int(rest[0]))
        if outcome == ClaimOutcome.STORED:
            status, content_type, body = rest
            return Claim(outcome, status=int(status), content_type=content_type.decode(), body=body)
        return Claim(outcome)

    def _script(self, client, source: str, keys: list, args: list, *, deadline: bool = True):
        # Through redis-py's Script (the pool, its parser): the rare paths, off
        # the wire module's fast one. A Script loads itself when Redis lost it.
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        if deadline:
            args = [*args, self._clock.deadline_ms(client)]
        return script(keys=keys, args=args, client=client)

    def _cancel_unanswered(self, client, allowed: Breaker) -> set[Breaker]:
        """Undo the checks whose reply never came, if they ran (their witness
        says so). A cancel is idempotent: one cut short is kept and sent again
        before a later call. Each goes to its own node, so on Redis Cluster a
        node still down delays only its own cancels. `allowed`: the breaker
        that already let this call through (a probe asks only once). Returns
        the breakers of the nodes that failed."""
        found = sent = 0
        failed = set()
        for _ in range(len(self._unanswered)):
            try:
                check = self._unanswered.popleft()
            except IndexError:
                break
            keys, args = [check.quota_key, check.pending_key], [check.witness, check.field, check.cost]
            breaker = None
            try:
                breaker = redis_breaker(client, check.quota_key)
                if breaker in failed or (breaker is not allowed and not breaker.allow()):
                    self._unanswered.append(check)
                    continue
                found += self._cancel(client, keys, args)
            except REDIS_UNAVAILABLE as error:
                self._unanswered.append(check)
                if breaker is not None:
                    breaker.failed(error)
                    failed.add(breaker)
                continue
            breaker.succeeded()
            sent += 1
        if found:
            logger.warning("%d of %d checks whose reply was lost had run: cancelled, unbilled", found, sent)
        return failed

    def _cancel(self, client, keys: list, args: list) -> int:
        if not replica_acks():
            return self._script(client, CANCEL_CHECK, keys, args, deadline=False)
        # Kept until replicas have it too: were the master lost before they
        # did, its successor would still hold the check (and its witness).
        script = self._scripts.get(CANCEL_CHECK) or client.register_script(CANCEL_CHECK)
        self._scripts[CANCEL_CHECK] = script
        return run_replicated(
            client, keys[0], lambda pipeline: script(keys=keys, args=args, client=pipeline), CANCEL_CHECK
        )

    def _run(self, key: str, call, *args):
        """`call(client, *args)` for a call on `key`'s slot, with Redis out of
        reach raised as LimiterUnavailable: at once while the breaker says its
        Redis (its node on Redis Cluster) is down (core.breaker)."""
        breaker = None
        try:
            client, breaker = self._client_and_breaker(key)
            if not breaker.allow():
                raise LimiterUnavailable(f"{breaker.name} is down: failing fast")
            if self._unanswered and breaker in self._cancel_unanswered(client, breaker):
                raise LimiterUnavailable(f"{breaker.name} is down: failing fast")
            result = call(client, *args)
        except REDIS_UNAVAILABLE as error:
            # No client can be made (no node answers), no master serves the
            # slot, or the call itself failed: then it may have run.
            if breaker is None:
                raise LimiterUnavailable(str(error)) from error
            breaker.failed(error)
            raise LimiterUnavailable(str(error), maybe_ran=True) from error
        breaker.succeeded()
        return result

    def _client_and_breaker(self, key: str):
        if self._fixed_client is None:
            client, breaker = django_redis_client(), _thread_client.breaker
        else:
            client = self._fixed_client
            if self._fixed_breaker is None:
                self._fixed_breaker = _client_breaker(client)
            breaker = self._fixed_breaker
        if breaker is _PER_NODE:
            breaker = redis_breaker(client, key)
        return client, breaker


class _WitnessSlot(threading.local):
    slot = ""
    pid = 0


_witness = _WitnessSlot()


def _witness_slot() -> str:
    """This thread's slot for its checks' witnesses: its own, so that no other
    thread's check replaces the witness of one this thread must cancel."""
    local = _witness
    if local.pid != os.getpid():  # a new thread, or a forked child
        # Four hex digits: two threads serving one customer share a slot once in
        # thousands, and a witness costs a few bytes of Redis per thread.
        local.slot, local.pid = os.urandom(2).hex(), os.getpid()
    return local.slot


@dataclass(frozen=True)
class _Unanswered:
    """A billed check whose reply never came: what its cancel needs."""

    quota_key: str
    pending_key: str
    witness: str
    field: str
    cost: int


def _kept_response(claimed: ClaimedKey | None) -> list:
    """settle.lua's ARGV[7..11]: the claim's token and what to keep of the response."""
    if claimed is None:
        return ["", "not_stored", 0, "", ""]
    state = "stored" if claimed.stored else "not_stored"
    return [claimed.token, state, claimed.status, claimed.content_type, claimed.body]


class _ThreadClient(threading.local):
    cache = None
    client = None
    breaker = None


_thread_client = _ThreadClient()


def django_redis_client():
    """The raw client behind the default cache, looked up once per cache object
    (django-redis's own lookup costs more than the rest of a check's Python).
    Django's caches are per thread, and so is this."""
    cache, local = caches["default"], _thread_client
    if local.cache is not cache:
        local.cache, local.client = cache, cache.client.get_client(write=True)
        local.breaker = _client_breaker(local.client)
    return local.client


_PER_NODE = object()  # a cluster client's breaker: per node, found by each call's key


def _client_breaker(client):
    """The one breaker of a single Redis, looked up once per client (it is
    on every check's path); on Redis Cluster, _PER_NODE."""
    return _PER_NODE if is_cluster(client) else redis_breaker(client)
