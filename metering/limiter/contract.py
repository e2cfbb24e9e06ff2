"""What every limiter backend takes and answers: Limits in, a Decision out,
and the Limiter protocol both backends (Redis, in-process) satisfy.

The caller passes the time in; no backend reads a clock.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from functools import cached_property
from typing import Protocol, runtime_checkable

from django.conf import settings

from ..keys import burst_key, pending_key, quota_key

BURST_WINDOW_MS = 1000
# A period's counter outlives the period a little, so a request that read the
# clock just before the boundary still finds it.
QUOTA_TTL_SLACK_MS = 60_000
PENDING_TTL_MS = 7 * 24 * 3600 * 1000  # pending usage is kept this long if the flush stops


def idempotency_ttl_seconds() -> int:
    """How long a settled Idempotency-Key is kept (settings.IDEMPOTENCY_KEY_TTL_SECONDS)."""
    return settings.IDEMPOTENCY_KEY_TTL_SECONDS


def idempotency_claim_ms() -> int:
    """How long a claimed key is held while its first request runs."""
    return settings.IDEMPOTENCY_CLAIM_SECONDS * 1000


class LimiterUnavailable(Exception):
    """The limiter's store cannot be reached; the caller decides open or closed.
    `maybe_ran`: the call was sent, and Redis may have run it all the same."""

    def __init__(self, message: str = "", *, maybe_ran: bool = False):
        super().__init__(message)
        self.maybe_ran = maybe_ran


class Reason(IntEnum):
    ADMITTED = 0
    BURST = 1
    QUOTA = 2
    NEEDS_SEED = 3  # the quota counter is missing; check again with a seed


@dataclass(frozen=True)
class Limits:
    """What one customer may use right now.

    The derived values are cached properties: a Limits lives for a whole
    period in the throttle's cache, and they would otherwise be rebuilt on
    every check. Cached, each reads as fast as a plain attribute.
    """

    customer_id: int
    burst: int  # requests per second
    quota: int  # units per period
    period_start: datetime
    period_end: datetime
    hard_quota: bool = True  # False: over-quota requests are admitted as overage
    # With overage: the most units admitted in the period (quota plus what the
    # customer's spending cap buys), or None for no cap.
    overage_ceiling: int | None = None

    @cached_property
    def ceiling(self) -> int:
        """Most units admitted in the period; -1 for no limit."""
        if self.hard_quota:
            return self.quota
        return -1 if self.overage_ceiling is None else self.overage_ceiling

    @cached_property
    def period_start_ms(self) -> int:
        return int(self.period_start.timestamp()) * 1000

    @cached_property
    def period_end_ms(self) -> int:
        return int(self.period_end.timestamp() * 1000)

    @cached_property
    def redis_keys(self) -> tuple[str, str, str]:
        """(burst state, the period's quota counter, pending usage): the keys of
        check_and_reserve.lua, and of the in-process twin's store."""
        customer_id, start = self.customer_id, self.period_start_ms // 1000
        return burst_key(customer_id), quota_key(customer_id, start), pending_key(customer_id)

    @cached_property
    def rate_limit_policy(self) -> str:
        """The RateLimit-Policy header (IETF draft): both limits, by name."""
        quota_window = round((self.period_end - self.period_start).total_seconds())
        return f'{self.burst};w=1;name="burst", {self.quota};w={quota_window};name="quota"'


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
    def reset_at(self) -> datetime:
        """When a retry can succeed, to the second (UTC): the period's end for
        a quota refusal, else the second that X-RateLimit-Reset names."""
        if self.reason == Reason.QUOTA:
            return self.limits.period_end
        return datetime.fromtimestamp(math.ceil(self.now_ms / 1000) + self.retry_after_seconds, UTC)

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


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # the key was free: this request runs
    REUSED = "reused"  # the key holds another request's fingerprint
    IN_USE = "in_use"  # the first request with the key still runs
    STORED = "stored"  # answered 2xx: its response is in the Claim
    NOT_STORED = "not_stored"  # answered 2xx with a body too large to keep


@dataclass(frozen=True)
class Claim:
    """What an Idempotency-Key holds (metering/lua/idempotency_claim.lua)."""

    outcome: ClaimOutcome
    retry_after_ms: int = 0  # IN_USE: until the claim lapses
    status: int = 0  # STORED: the response
    content_type: str = ""
    body: bytes = b""


@dataclass(frozen=True)
class ClaimedKey:
    """An Idempotency-Key this request claimed, and what to keep of its response."""

    record: str  # the record's Redis key (metering.keys.idempotency_record)
    token: str
    stored: bool = False  # False: the response is over the bound (or streamed)
    status: int = 0
    content_type: str = ""
    body: bytes = b""


@dataclass(frozen=True)
class SettleRequest:
    """What the settle step needs; see metering/lua/settle.lua for the rules."""

    decision: Decision
    billed_at_check: bool  # check() was given the usage field and billed optimistically
    billable: bool  # what the response says
    cost: int
    usage_field: str  # "u|<hour>|<key id>|<endpoint>"
    claimed: ClaimedKey | None = None  # the Idempotency-Key this request claimed


@runtime_checkable
class Limiter(Protocol):
    def check(
        self,
        limits: Limits,
        *,
        cost: int = 1,
        now_ms: int,
        seed: int | None = 0,
        bill_field: str | None = None,
    ) -> Decision:
        """Check the burst and quota and reserve `cost` units; with `bill_field`,
        also bill them to it. `seed`: usage to start a missing quota counter
        from, or None to get Reason.NEEDS_SEED back when it is missing."""
        ...

    def settle(self, request: SettleRequest) -> Settlement:
        """Bill or give back what check() could not decide (metering/lua/settle.lua)."""
        ...

    def claim(self, record: str, *, fingerprint: str, token: str, now_ms: int) -> Claim:
        """Claim an Idempotency-Key's record or read it (metering/lua/idempotency_claim.lua)."""
        ...
