import time

import pytest

from metering import throttling
from metering.limiter import wire


class StoppedClock:
    """Stands in for the `time` module in metering.throttling: time moves only when told."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    stopped = StoppedClock(time.time())
    monkeypatch.setattr(throttling, "time", stopped)
    return stopped


@pytest.fixture
def public_redis_path(monkeypatch):
    """The limiter as on a redis-py version its wire module was not tested on:
    through redis-py's public API only."""
    monkeypatch.setattr(wire, "FAST", False)
