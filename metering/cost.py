"""Measuring what a request costs to serve: CPU, bytes out, third-party calls.

Endpoint code wraps each outbound call so it is counted:

    from metering.cost import third_party_call

    with third_party_call("geocoder"):
        response = session.get(...)

Samples are aggregated per endpoint and hour (see metering.keys) and priced
with the unit prices in settings (COST_PER_CPU_MS, COST_PER_KB_OUT,
COST_PER_THIRD_PARTY_CALL). Refused requests (429, 402) are counted per
customer and hour the same way, for the dashboards' refusal rates: a statistic
too, so it rides along rather than costing a refused request a round trip.
"""

import bisect
import contextvars
import logging
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django_redis import get_redis_connection

from core.breaker import cache_breaker

from .keys import COST_KEY
from .ledger import add_cost_fields
from .models import CPU_BUCKET_PREFIX, CostMetric

logger = logging.getLogger(__name__)

COST_KEY_TTL_MS = 7 * 24 * 3600 * 1000

# Upper edges (ms) of the CPU time histogram buckets; the last bucket is open.
CPU_BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)

_calls: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("third_party_calls", default=None)


@contextmanager
def third_party_call(service: str):
    """Count one outbound call made while serving the current request."""
    calls = _calls.get()
    if calls is not None:
        calls.append(service)
    yield


@dataclass
class CostSample:
    cpu_ms: float = 0.0
    bytes_out: int = 0
    third_party_calls: int = 0

    def histogram_bucket(self) -> int:
        return bisect.bisect_left(CPU_BUCKETS_MS, self.cpu_ms)


@dataclass
class CostMeter:
    """Measures one request: CPU of the serving thread (not wall time) and calls."""

    _cpu_start: float = field(default_factory=time.thread_time)
    _token: contextvars.Token | None = None
    _calls: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._token = _calls.set(self._calls)

    def finish(self, response) -> CostSample:
        cpu_ms = (time.thread_time() - self._cpu_start) * 1000
        _calls.reset(self._token)
        return CostSample(
            cpu_ms=cpu_ms, bytes_out=response_size(response), third_party_calls=len(self._calls)
        )


def response_size(response) -> int:
    if getattr(response, "streaming", False):
        return int(response.get("Content-Length") or 0)
    return len(response.content)


@dataclass(frozen=True)
class UnitPrices:
    per_cpu_ms: Decimal
    per_kb_out: Decimal
    per_third_party_call: Decimal

    @classmethod
    def from_settings(cls) -> "UnitPrices":
        return cls(
            per_cpu_ms=Decimal(str(settings.COST_PER_CPU_MS)),
            per_kb_out=Decimal(str(settings.COST_PER_KB_OUT)),
            per_third_party_call=Decimal(str(settings.COST_PER_THIRD_PARTY_CALL)),
        )


# A sample's running totals: requests, CPU us, bytes out, third-party calls,
# then one count per CPU histogram bucket.
_TOTALS = (CostMetric.REQUESTS, CostMetric.CPU_US, CostMetric.BYTES_OUT, CostMetric.THIRD_PARTY_CALLS)
_TOTALS_LENGTH = len(_TOTALS) + len(CPU_BUCKETS_MS) + 1


def cost_fields(hour: int, endpoint: str, totals: list[int]) -> dict[str, int]:
    """The pending cost hash's fields for one endpoint and hour."""
    prefix = f"c|{hour}|{endpoint}|"
    fields = {prefix + name: value for name, value in zip(_TOTALS, totals, strict=False)}
    for bucket, count in enumerate(totals[len(_TOTALS) :]):
        if count:
            fields[f"{prefix}{CPU_BUCKET_PREFIX}{bucket}"] = count
    return fields


class CostAggregator:
    """Sums cost samples (and refusal counts) in process and writes them out
    every few seconds.

    A baseline is a statistic: losing a few seconds of samples when a process
    dies is an accepted price for keeping Redis off the request path.
    """

    def __init__(self, interval_seconds: float, clock=time.monotonic):
        self.interval = interval_seconds
        self._clock = clock
        # Summed per (hour, endpoint) and named only when written: a sample
        # costs a few additions rather than five formatted field names.
        self._samples: dict[tuple[int, str], list[int]] = {}
        self._refusals: dict[tuple[int, int, int], int] = defaultdict(int)
        self._flushed_at = clock()
        self._lock = threading.Lock()

    def add(self, hour: int, endpoint: str, sample: CostSample) -> None:
        cpu_us, bucket = round(sample.cpu_ms * 1000), sample.histogram_bucket()
        with self._lock:
            totals = self._samples.get((hour, endpoint))
            if totals is None:
                totals = self._samples[(hour, endpoint)] = [0] * _TOTALS_LENGTH
            totals[0] += 1
            totals[1] += cpu_us
            totals[2] += sample.bytes_out
            totals[3] += sample.third_party_calls
            totals[len(_TOTALS) + bucket] += 1
        self._flush_when_due()

    def add_refusal(self, hour: int, customer_id: int, status: int) -> None:
        with self._lock:
            self._refusals[(hour, customer_id, status)] += 1
        self._flush_when_due()

    def _flush_when_due(self) -> None:
        if self._clock() - self._flushed_at >= self.interval:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            samples, self._samples = self._samples, {}
            refusals, self._refusals = self._refusals, defaultdict(int)
            self._flushed_at = self._clock()
        fields = {}
        for (hour, endpoint), totals in samples.items():
            fields.update(cost_fields(hour, endpoint, totals))
        for (hour, customer_id, status), count in refusals.items():
            fields[f"r|{hour}|{customer_id}|{status}"] = count
        if not fields:
            return
        breaker = cache_breaker(COST_KEY) if settings.REDIS_URL else None
        if breaker is not None and not breaker.allow():
            logger.debug("Redis down: %s cost sample fields dropped", len(fields))
            return
        try:
            _write_cost_fields(fields)
        except Exception as error:
            if breaker is None:
                logger.warning("could not write %s cost sample fields", len(fields), exc_info=True)
                return
            breaker.failed(error)  # logs the outage once
            return
        if breaker is not None:
            breaker.succeeded()


def _write_cost_fields(fields: dict[str, int]) -> None:
    if not settings.REDIS_URL:
        add_cost_fields(fields)  # the embedded default: no Redis to flush from
        return
    with get_redis_connection("default").pipeline(transaction=True) as pipe:
        for name, value in fields.items():
            pipe.hincrby(COST_KEY, name, value)
        pipe.pexpire(COST_KEY, COST_KEY_TTL_MS)
        pipe.execute()


cost_aggregator = CostAggregator(interval_seconds=settings.COST_FLUSH_SECONDS)
