"""The limiter: a customer's burst and quota, checked and reserved atomically.

Two backends with one contract (tests/metering/test_limiter_contract.py runs
against both):

- `RedisLimiter`: one EVALSHA of metering/lua/check_and_reserve.lua per check.
  All of a customer's keys carry the hash tag `{c<id>}`, so the script touches
  one cluster slot and runs unchanged on Redis Cluster.
- `MemoryLimiter`: the same algorithm in process, behind a lock, for the
  embedded default (no REDIS_URL). Limits are per process there.

The caller passes the time in; neither backend reads a clock.
"""

import hashlib
import math
import os
import select
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from pathlib import Path

from django.conf import settings
from django.core.cache import caches
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .keys import pending_key, redis_key
from .ledger import add_usage_fields

BURST_WINDOW_MS = 1000
# A period's counter outlives the period a little, so a request that read the
# clock just before the boundary still finds it.
QUOTA_TTL_SLACK_MS = 60_000
LUA_DIR = Path(__file__).parent / "lua"
CHECK_AND_RESERVE = (LUA_DIR / "check_and_reserve.lua").read_text()
SETTLE = (LUA_DIR / "settle.lua").read_text()
SCRIPT_SHAS = {source: hashlib.sha1(source.encode()).hexdigest() for source in (CHECK_AND_RESERVE, SETTLE)}
PENDING_TTL_MS = 7 * 24 * 3600 * 1000  # pending usage is kept this long if the flush stops
IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class LimiterUnavailable(Exception):
    """The limiter's store cannot be reached; the caller decides open or closed."""


class Reason(IntEnum):
    ADMITTED = 0
    BURST = 1
    QUOTA = 2
    NEEDS_SEED = 3  # the quota counter is missing; check again with a seed


@dataclass(frozen=True)
class Limits:
    """What one customer may use right now."""

    customer_id: int
    burst: int  # requests per second
    quota: int  # units per period
    period_start: datetime
    period_end: datetime
    hard_quota: bool = True  # False: over-quota requests are admitted as overage
    # With overage: the most units admitted in the period (quota plus what the
    # customer's spending cap buys), or None for no cap.
    overage_ceiling: int | None = None

    @property
    def ceiling(self) -> int:
        """Most units admitted in the period; -1 for no limit."""
        if self.hard_quota:
            return self.quota
        return -1 if self.overage_ceiling is None else self.overage_ceiling

    def __post_init__(self):
        # Derived once: a Limits lives for a whole period in the throttle's cache,
        # and these would otherwise be rebuilt on every check.
        customer_id, start = self.customer_id, int(self.period_start.timestamp())
        keys = (
            redis_key("burst", customer_id),
            redis_key("quota", customer_id, start),
            pending_key(customer_id),
        )
        period_end_ms = int(self.period_end.timestamp() * 1000)
        # check_and_reserve.lua's keys and the arguments that stay the same all
        # period, already in Redis's wire format: the request adds four more.
        fixed = (
            *keys,
            self.burst,
            self.quota,
            self.ceiling,
            period_end_ms + QUOTA_TTL_SLACK_MS,
            PENDING_TTL_MS,
        )
        object.__setattr__(self, "redis_keys", keys)
        object.__setattr__(self, "period_start_ms", start * 1000)
        object.__setattr__(self, "period_end_ms", period_end_ms)
        object.__setattr__(self, "check_fixed_args", fixed)
        object.__setattr__(self, "check_command_head", _command_head(CHECK_AND_RESERVE, len(keys), fixed, 4))
        # The RateLimit-Policy header (IETF draft) names both limits; it only
        # changes with them, so it is written once here rather than per response.
        quota_window = round((self.period_end - self.period_start).total_seconds())
        policy = f'{self.burst};w=1;name="burst", {self.quota};w={quota_window};name="quota"'
        object.__setattr__(self, "rate_limit_policy", policy)


@dataclass(frozen=True)
class Decision:
    limits: Limits
    now_ms: int
    reason: Reason
    quota_used: int
    burst_remaining: int
    burst_wait_ms: int

    @property
    def admitted(self) -> bool:
        return self.reason == Reason.ADMITTED

    @property
    def quota_remaining(self) -> int:
        return max(0, self.limits.quota - self.quota_used)

    @property
    def quota_reset_seconds(self) -> int:
        return max(0, math.ceil((self.limits.period_end_ms - self.now_ms) / 1000))

    @property
    def burst_reset_seconds(self) -> int:
        return math.ceil(self.burst_wait_ms / 1000)

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds until a retry can succeed (0 when admitted)."""
        if self.reason == Reason.BURST:
            return max(1, self.burst_reset_seconds)
        if self.reason == Reason.QUOTA:
            return max(1, self.quota_reset_seconds)
        return 0


@dataclass(frozen=True)
class Settlement:
    billed: bool
    used: int  # quota units used in the period after settling


@dataclass(frozen=True)
class SettleRequest:
    """What the settle step needs; see metering/lua/settle.lua for the rules."""

    decision: Decision
    billed_at_check: bool  # check() was given the usage field and billed optimistically
    billable: bool  # what the response says
    cost: int
    usage_field: str  # "u|<hour>|<key id>|<endpoint>"
    idempotency_marker: str | None  # redis key of the request's Idempotency-Key


def quota_key(limits: Limits) -> str:
    """The period's quota counter; keyed by the period start, so a tier change
    mid-period keeps the usage already counted."""
    return limits.redis_keys[1]


def _bulk(value) -> bytes:
    """One RESP bulk string, as redis-py would encode `value`."""
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _command_head(source: str, key_count: int, fixed: tuple, more: int) -> bytes:
    """The start of an EVALSHA command in Redis's wire format: array header,
    script SHA, keys and fixed arguments; `more` arguments follow per call."""
    items = (b"EVALSHA", SCRIPT_SHAS[source], key_count, *fixed)
    return b"*%d\r\n" % (len(items) + more) + b"".join(map(_bulk, items))


class _ThreadConnection(threading.local):
    connection = None
    pool = None
    pid = None
    sock = None
    poller = None


_thread_connection = _ThreadConnection()


def _connection(pool, reconnected: bool = False):
    """The Redis connection this thread keeps for the limiter, ready to use.

    Not one from the pool: measured here, the pool's checkout and return, its
    locks and the command dispatch around them cost more client CPU than the
    round trip itself. It is redis-py's own Connection, made with the pool's
    settings (AUTH, SELECT, TLS, timeouts, retry policy) but outside its
    count: the pool never gets it back, and its max_connections is for its own.
    """
    local = _thread_connection
    pid = os.getpid()
    if local.connection is None or local.pool is not pool or local.pid != pid:
        # A new thread, a new client, or a forked child (never share a parent's socket).
        local.connection, local.pool, local.pid = pool.connection_class(**pool.connection_kwargs), pool, pid
        local.sock = None
    connection = local.connection
    if connection._sock is None:
        connection.connect()
    if connection._sock is not local.sock:
        local.sock, local.poller = connection._sock, select.poll()
        local.poller.register(local.sock, select.POLLIN)
    # Nothing is owed to us between calls: a socket that reads as ready was
    # closed by the server (a Redis restart). Reconnect rather than fail the
    # request, as the pool does on checkout; one poll() is the whole check.
    if local.poller.poll(0):
        connection.disconnect()
        if reconnected:  # a fresh connection already reads as closed: Redis refuses us
            raise RedisConnectionError("Redis closed a new connection at once")
        return _connection(pool, reconnected=True)
    return connection


def _send(client, packed: bytes, items: tuple, round_trip=None):
    """Sends one command, `packed` in Redis's wire format, and returns the reply
    (read by `round_trip(connection, packed)`, redis-py's parser by default).

    `items` is the same command unpacked, for a client without a plain
    connection pool (Redis Cluster), which keeps redis-py's ordinary path.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is None or not hasattr(pool, "connection_class"):
        return client.execute_command(*items)
    connection = _connection(pool)
    round_trip = round_trip or _parsed_round_trip
    # On a connection or timeout error: drop the socket (a half-read reply must
    # not be read by the next call) and, as the client does, retry per its policy.
    return connection.retry.call_with_retry(
        lambda: round_trip(connection, packed), lambda error: connection.disconnect()
    )


def _parsed_round_trip(connection, packed: bytes):
    connection.send_packed_command((packed,), check_health=False)
    return connection.read_response()


def _send_line(client, packed: bytes, items: tuple):
    """As _send, for a command whose reply is one line (a status, an integer or
    an error), like the check script's: the reply is read straight off the
    socket. A one-line reply needs none of redis-py's parser, and skipping it
    saves about a fifth of the check's client instructions (make bench-instructions)."""
    return _send(client, packed, items, _line_round_trip)


def _line_round_trip(connection, packed: bytes) -> bytes | int:
    if connection._sock is None:  # dropped by a failed try: the retry reconnects
        connection.connect()
    sock = connection._sock
    try:
        sock.sendall(packed)
        reply = sock.recv(4096)
        while not reply.endswith(b"\r\n"):
            more = sock.recv(4096)
            if not more:
                raise RedisConnectionError("Redis closed the connection before replying")
            reply += more
    except TimeoutError as error:
        raise RedisTimeoutError(f"Timeout talking to Redis: {error}") from error
    except OSError as error:
        raise RedisConnectionError(f"Error talking to Redis: {error}") from error
    if reply[:1] == b"+":
        return reply[1:-2]
    if reply[:1] == b":":
        return int(reply[1:-2])
    if reply[:1] == b"-":  # the same exception classes redis-py's parser raises
        raise connection._parser.parse_error(reply[1:-2].decode())
    # A reply of several lines: the command was not one for this reader. Drop
    # the connection (the rest of the reply may still be coming) and fail.
    connection.disconnect()
    raise InvalidResponse(f"not a one-line reply: {reply[:40]!r}")


def _evalsha(client, sha: str, keys: list, args: list):
    """EVALSHA of any script on the limiter's connection (see _connection)."""
    items = ("EVALSHA", sha, len(keys), *keys, *args)
    return _send(client, b"*%d\r\n" % len(items) + b"".join(map(_bulk, items)), items)


_REASONS = tuple(Reason)


class RedisLimiter:
    def __init__(self, client=None):
        self._fixed_client = client

    def _client(self):
        return self._fixed_client or _django_redis_client()

    def _call(self, source: str, send):
        """Runs `send(client)`, loading `source` first if Redis lost its script cache."""
        client = self._client()
        try:
            try:
                return send(client)
            except NoScriptError:
                # A restarted Redis has an empty script cache: load and retry.
                client.script_load(source)
                return send(client)
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise LimiterUnavailable(str(error)) from error

    def check(
        self,
        limits: Limits,
        *,
        cost: int = 1,
        now_ms: int,
        seed: int | None = 0,
        bill_field: str | None = None,
    ) -> Decision:
        """Check and reserve; with `bill_field`, also bill the units to it.

        `seed`: usage to start a missing counter from, or None to get
        Reason.NEEDS_SEED back when the counter is missing.
        """
        per_call = (now_ms, cost, -1 if seed is None else seed, bill_field or "")
        packed = limits.check_command_head + b"".join(map(_bulk, per_call))

        def send(client):
            items = ("EVALSHA", SCRIPT_SHAS[CHECK_AND_RESERVE], 3, *limits.check_fixed_args, *per_call)
            return _send_line(client, packed, items)

        reason, used, remaining, wait_ms = self._call(CHECK_AND_RESERVE, send).split()
        return Decision(limits, now_ms, _REASONS[int(reason)], int(used), int(remaining), int(wait_ms))

    def settle(self, request: SettleRequest) -> Settlement:
        limits = request.decision.limits
        keys = [quota_key(limits), pending_key(limits.customer_id), request.idempotency_marker or ""]
        args = [
            int(request.billed_at_check),
            int(request.billable),
            request.cost,
            request.usage_field,
            PENDING_TTL_MS,
            IDEMPOTENCY_TTL_SECONDS,
        ]
        billed, used = self._call(SETTLE, lambda client: _evalsha(client, SCRIPT_SHAS[SETTLE], keys, args))
        return Settlement(bool(billed), used)


class MemoryLimiter:
    """In-process twin of the Lua script: same keys, same arithmetic."""

    def __init__(self):
        self._lock = threading.Lock()
        self._store: dict[str, tuple[float, int]] = {}  # key -> (value, expires at ms)

    def _get(self, key: str, now_ms: int) -> float | None:
        entry = self._store.get(key)
        if entry is None or entry[1] <= now_ms:
            self._store.pop(key, None)
            return None
        return entry[0]

    def check(
        self,
        limits: Limits,
        *,
        cost: int = 1,
        now_ms: int,
        seed: int | None = 0,
        bill_field: str | None = None,
    ) -> Decision:
        burst_key, counter_key, _ = limits.redis_keys
        burst, ceiling = limits.burst, limits.ceiling
        counter_expires = limits.period_end_ms + QUOTA_TTL_SLACK_MS
        # Whole ticks of 1/burst ms ahead of now, as in the script (see there why).
        window = BURST_WINDOW_MS * burst
        with self._lock:
            tat = self._get(burst_key, now_ms)
            ahead = max(0, math.floor((tat - now_ms) * burst + 0.5)) if tat is not None else 0
            new_ahead = ahead + BURST_WINDOW_MS
            stored = self._get(counter_key, now_ms)
            if stored is None and seed is None:
                return Decision(limits, now_ms, Reason.NEEDS_SEED, 0, 0, 0)
            used = int(stored if stored is not None else seed)
            remaining = (window - ahead) // BURST_WINDOW_MS
            if new_ahead > window:
                wait = math.ceil((new_ahead - window) / burst)
                return Decision(limits, now_ms, Reason.BURST, used, remaining, wait)
            if ceiling >= 0 and used + cost > ceiling:
                return Decision(limits, now_ms, Reason.QUOTA, used, remaining, math.ceil(ahead / burst))
            wait = math.ceil(new_ahead / burst)
            # Rounded as the script's %.3f string is, so both backends decide alike.
            self._store[burst_key] = (round(now_ms + new_ahead / burst, 3), now_ms + wait + 1)
            if stored is None:
                self._store[counter_key] = (used + cost, max(now_ms + 1, counter_expires))
            else:  # as INCRBY: the counter keeps the expiry it was made with
                self._store[counter_key] = (used + cost, self._store[counter_key][1])
            self._prune(now_ms)
        if bill_field:
            _add_usage(limits.customer_id, bill_field, cost)
        remaining = (window - new_ahead) // BURST_WINDOW_MS
        return Decision(limits, now_ms, Reason.ADMITTED, used + cost, remaining, wait)

    def settle(self, request: SettleRequest) -> Settlement:
        """As settle.lua, except that usage goes straight to the database:
        with no Redis there is nothing for a flush to read from."""
        now_ms, limits = request.decision.now_ms, request.decision.limits
        billable = request.billable
        with self._lock:
            if billable and request.idempotency_marker:
                if self._get(request.idempotency_marker, now_ms) is not None:
                    billable = False
                else:
                    expires = now_ms + IDEMPOTENCY_TTL_SECONDS * 1000
                    self._store[request.idempotency_marker] = (1, expires)
            key = quota_key(limits)
            used = int(self._get(key, now_ms) or 0)
            if not billable and used:
                used -= min(request.cost, used)
                self._store[key] = (used, self._store[key][1])
        if billable != request.billed_at_check:
            _add_usage(limits.customer_id, request.usage_field, request.cost if billable else -request.cost)
        return Settlement(billable, used)

    def _prune(self, now_ms: int) -> None:
        # Amortised cleanup of expired keys so memory stays bounded by live customers.
        if len(self._store) > 10_000:
            for key in [k for k, (_, expires) in self._store.items() if expires <= now_ms]:
                del self._store[key]


def _add_usage(customer_id: int, field: str, units: int) -> None:
    add_usage_fields(customer_id, {field: units})


def _django_redis_client():
    """The raw client behind the default cache, looked up once per cache object
    (django-redis's own lookup costs more than the rest of a check's Python)."""
    cache = caches["default"]
    client = getattr(cache, "_metering_client", None)
    if client is None:
        client = cache.client.get_client(write=True)
        cache._metering_client = client
    return client


_memory_limiter = MemoryLimiter()
_redis_limiter = RedisLimiter()


def get_limiter() -> RedisLimiter | MemoryLimiter:
    return _redis_limiter if settings.REDIS_URL else _memory_limiter
