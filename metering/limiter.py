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

import math
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from pathlib import Path

from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

KEY_VERSION = "v1"
BURST_WINDOW_MS = 1000
# A period's counter outlives the period a little, so a request that read the
# clock just before the boundary still finds it.
QUOTA_TTL_SLACK_MS = 60_000
CHECK_AND_RESERVE = (Path(__file__).parent / "lua" / "check_and_reserve.lua").read_text()


class LimiterUnavailable(Exception):
    """The limiter's store cannot be reached; the caller decides open or closed."""


class Reason(IntEnum):
    ADMITTED = 0
    BURST = 1
    QUOTA = 2


@dataclass(frozen=True)
class Limits:
    """What one customer may use right now."""

    customer_id: int
    burst: int  # requests per second
    quota: int  # units per period
    period_start: datetime
    period_end: datetime
    hard_quota: bool = True  # False: over-quota requests are admitted as overage


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
        return max(0, math.ceil((self.limits.period_end.timestamp() * 1000 - self.now_ms) / 1000))

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


def redis_key(kind: str, customer_id: int, *parts) -> str:
    """`metering:v1:<kind>:{c<customer_id>}[:<part>...]`: one hash slot per customer."""
    return ":".join(["metering", KEY_VERSION, kind, f"{{c{customer_id}}}", *map(str, parts)])


def _script_args(limits: Limits, cost: int, now_ms: int) -> tuple[list[str], list]:
    period_start = int(limits.period_start.timestamp())
    keys = [
        redis_key("burst", limits.customer_id),
        redis_key("quota", limits.customer_id, period_start),
    ]
    quota_ttl_ms = max(1, int(limits.period_end.timestamp() * 1000) - now_ms) + QUOTA_TTL_SLACK_MS
    args = [now_ms, limits.burst, limits.quota, cost, quota_ttl_ms, int(limits.hard_quota)]
    return keys, args


class RedisLimiter:
    def __init__(self, client=None):
        self._fixed_client = client
        self._client = None
        self._script = None

    def _get_script(self):
        if self._fixed_client is not None:
            client = self._fixed_client
        else:
            from django_redis import get_redis_connection

            client = get_redis_connection("default")
        if client is not self._client:
            # redis-py's Script runs EVALSHA and reloads the source by itself
            # on NOSCRIPT, e.g. after a Redis restart emptied the script cache.
            self._client, self._script = client, client.register_script(CHECK_AND_RESERVE)
        return self._script

    def check(self, limits: Limits, *, cost: int = 1, now_ms: int) -> Decision:
        keys, args = _script_args(limits, cost, now_ms)
        try:
            admitted, reason, used, remaining, wait_ms = self._get_script()(keys=keys, args=args)
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise LimiterUnavailable(str(error)) from error
        return Decision(limits, now_ms, Reason(reason), used, remaining, wait_ms)


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

    def check(self, limits: Limits, *, cost: int = 1, now_ms: int) -> Decision:
        (burst_key, quota_key), (_, burst, quota, cost, quota_ttl, hard) = _script_args(limits, cost, now_ms)
        interval = BURST_WINDOW_MS / burst
        with self._lock:
            tat = max(self._get(burst_key, now_ms) or now_ms, now_ms)
            new_tat = tat + interval
            used = int(self._get(quota_key, now_ms) or 0)
            if new_tat - now_ms > BURST_WINDOW_MS:
                remaining = math.floor((BURST_WINDOW_MS - (tat - now_ms)) / interval)
                wait = math.ceil(new_tat - BURST_WINDOW_MS - now_ms)
                return Decision(limits, now_ms, Reason.BURST, used, remaining, wait)
            if hard and used + cost > quota:
                remaining = math.floor((BURST_WINDOW_MS - (tat - now_ms)) / interval)
                return Decision(limits, now_ms, Reason.QUOTA, used, remaining, math.ceil(tat - now_ms))
            self._store[burst_key] = (new_tat, now_ms + math.ceil(new_tat - now_ms) + 1)
            self._store[quota_key] = (used + cost, now_ms + quota_ttl)
            self._prune(now_ms)
        remaining = math.floor((BURST_WINDOW_MS - (new_tat - now_ms)) / interval)
        return Decision(limits, now_ms, Reason.ADMITTED, used + cost, remaining, math.ceil(new_tat - now_ms))

    def _prune(self, now_ms: int) -> None:
        # Amortised cleanup of expired keys so memory stays bounded by live customers.
        if len(self._store) > 10_000:
            for key in [k for k, (_, expires) in self._store.items() if expires <= now_ms]:
                del self._store[key]


_memory_limiter = MemoryLimiter()
_redis_limiter = RedisLimiter()


def get_limiter() -> RedisLimiter | MemoryLimiter:
    return _redis_limiter if settings.REDIS_URL else _memory_limiter
