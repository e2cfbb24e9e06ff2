"""The limiter: a customer's burst and quota, checked and reserved atomically.

Two backends with one contract (contract.py; tests/metering/test_limiter_contract.py
runs against both):

- `RedisLimiter` (redis_backend.py): one EVALSHA of metering/lua/check_and_reserve.lua
  per check, its round trip in wire.py;
- `MemoryLimiter` (memory_backend.py): the same algorithm in process, for the
  embedded default (no REDIS_URL).
"""

from django.conf import settings

from .contract import (
    Claim,
    ClaimedKey,
    ClaimOutcome,
    Decision,
    Limiter,
    LimiterUnavailable,
    Limits,
    Reason,
    Settlement,
    SettleRequest,
)
from .memory_backend import MemoryLimiter
from .redis_backend import RedisLimiter

__all__ = [
    "Claim",
    "ClaimOutcome",
    "ClaimedKey",
    "Decision",
    "Limiter",
    "LimiterUnavailable",
    "Limits",
    "MemoryLimiter",
    "Reason",
    "RedisLimiter",
    "Settlement",
    "SettleRequest",
    "get_limiter",
]

_memory_limiter: Limiter = MemoryLimiter()
_redis_limiter: Limiter = RedisLimiter()


def get_limiter() -> Limiter:
    return _redis_limiter if settings.REDIS_URL else _memory_limiter
