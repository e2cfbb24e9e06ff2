"""The limiter in process, for the embedded default (no REDIS_URL): the same
algorithm as metering/lua/check_and_reserve.lua and settle.lua, behind a lock.
Limits are per process here.
"""

import math
import threading

from ..keys import hour_of, refusal_field
from ..ledger import add_refusal_fields, add_usage_fields
from .contract import (
    BURST_WINDOW_MS,
    QUOTA_TTL_SLACK_MS,
    Claim,
    ClaimedKey,
    ClaimOutcome,
    Decision,
    Limits,
    Reason,
    Settlement,
    SettleRequest,
    idempotency_claim_ms,
    idempotency_ttl_seconds,
)


class MemoryLimiter:
    """In-process twin of the Lua scripts: same keys, same arithmetic."""

    def __init__(self):
        self._lock = threading.Lock()
        self._store: dict[str, tuple[float, int]] = {}  # key -> (value, expires at ms)
        # Idempotency-Key records -> (fingerprint, token or "", Claim once settled, expires at ms)
        self._records: dict[str, tuple[str, str, Claim | None, int]] = {}

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
        with self._lock:
            decision = self._check(limits, cost, now_ms, seed)
        if bill_field and decision.admitted:
            add_usage_fields(limits.customer_id, {bill_field: cost})
        elif decision.reason in (Reason.BURST, Reason.QUOTA):
            # As the script counts it; with no Redis, straight to the database.
            add_refusal_fields({limits.customer_id: {refusal_field(hour_of(now_ms)): 1}})
        return decision

    def _check(self, limits: Limits, cost: int, now_ms: int, seed: int | None) -> Decision:
        """check_and_reserve.lua's steps; the caller holds the lock."""
        burst_key, counter_key, _ = limits.redis_keys
        burst, ceiling = limits.burst, limits.ceiling
        # Whole ticks of 1/burst ms ahead of now, as in the script (see there why).
        window = BURST_WINDOW_MS * burst
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
        if cost > 0 and ceiling >= 0 and used + cost > ceiling:  # cost 0: the burst only
            return Decision(limits, now_ms, Reason.QUOTA, used, remaining, math.ceil(ahead / burst))
        wait = self._reserve(limits, now_ms, new_ahead, used + cost, counter_exists=stored is not None)
        remaining = (window - new_ahead) // BURST_WINDOW_MS
        return Decision(limits, now_ms, Reason.ADMITTED, used + cost, remaining, wait)

    def _reserve(
        self, limits: Limits, now_ms: int, new_ahead: int, used: int, *, counter_exists: bool
    ) -> int:
        """The script's writes: the new TAT and the counter. Returns the burst's wait, ms."""
        burst_key, counter_key, _ = limits.redis_keys
        wait = math.ceil(new_ahead / limits.burst)
        # Rounded as the script's %.3f string is, so both backends decide alike.
        self._store[burst_key] = (round(now_ms + new_ahead / limits.burst, 3), now_ms + wait + 1)
        if counter_exists:  # as INCRBY: the counter keeps the expiry it was made with
            self._store[counter_key] = (used, self._store[counter_key][1])
        else:
            counter_expires = limits.period_end_ms + QUOTA_TTL_SLACK_MS
            self._store[counter_key] = (used, max(now_ms + 1, counter_expires))
        self._prune(now_ms)
        return wait

    def settle(self, request: SettleRequest) -> Settlement:
        """As settle.lua, except that usage goes straight to the database:
        with no Redis there is nothing for a flush to read from."""
        now_ms, limits = request.decision.now_ms, request.decision.limits
        with self._lock:
            if request.claimed is not None:
                self._settle_claim(request.claimed, request.billable, now_ms)
            key = limits.redis_keys[1]
            used = int(self._get(key, now_ms) or 0)
            if not request.billable and used:
                used -= min(request.cost, used)
                self._store[key] = (used, self._store[key][1])
        if request.billable != request.billed_at_check:
            units = request.cost if request.billable else -request.cost
            add_usage_fields(limits.customer_id, {request.usage_field: units})
        return Settlement(request.billable, used)

    def claim(self, record: str, *, fingerprint: str, token: str, now_ms: int) -> Claim:
        """As idempotency_claim.lua."""
        with self._lock:
            entry = self._records.get(record)
            if entry is None or entry[3] <= now_ms:
                self._records[record] = (fingerprint, token, None, now_ms + idempotency_claim_ms())
                return Claim(ClaimOutcome.CLAIMED)
        held, _, settled, expires = entry
        if held != fingerprint:
            return Claim(ClaimOutcome.REUSED)
        return settled or Claim(ClaimOutcome.IN_USE, retry_after_ms=expires - now_ms)

    def _settle_claim(self, claimed: ClaimedKey, billable: bool, now_ms: int) -> None:
        """settle.lua's first step; the caller holds the lock."""
        entry = self._records.get(claimed.record)
        if entry is None or entry[1] != claimed.token:
            return  # the claim lapsed while the view ran: no longer this request's
        if not billable:
            del self._records[claimed.record]
            return
        if claimed.stored:
            settled = Claim(ClaimOutcome.STORED, 0, claimed.status, claimed.content_type, claimed.body)
        else:
            settled = Claim(ClaimOutcome.NOT_STORED)
        self._records[claimed.record] = (entry[0], "", settled, now_ms + idempotency_ttl_seconds() * 1000)

    def _prune(self, now_ms: int) -> None:
        # Amortised cleanup of expired keys so memory stays bounded by live customers.
        if len(self._records) > 10_000:
            self._records = {k: v for k, v in self._records.items() if v[3] > now_ms}
        if len(self._store) > 10_000:
            for key in [k for k, (_, expires) in self._store.items() if expires <= now_ms]:
                del self._store[key]
