import time

import pytest

from metering import throttling


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
