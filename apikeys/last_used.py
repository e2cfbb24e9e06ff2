"""Last-use times of keys: noted per process on the hot path (KeyContextCache)
and written by a thread of the process's own, so that a slow or unreachable
database never delays or fails a request.

Why a thread that writes every few seconds, rather than Redis: a key's last
use is noted by authentication for every request, including those the limiter
never sees (a 402, an unmetered view) or sees without a key field (a request
of cost 0); recording it in the limiter's script would add a command to every
check, and the pending hash's usage fields name only the hour. Noting it here
costs a dict write under a lock; the thread writes the latest use of each key
at most once per WRITE_INTERVAL_SECONDS and process, on its own clock, so a
use shows on the dashboard within seconds even when no later request reaches
the process. What a killed process had not yet written (a few seconds) is
lost: a display value, not a bill.
"""

import logging
import os
import threading
import time
from datetime import UTC, datetime

from django.db import connections, transaction
from django.db.models import Q

from .models import APIKey

logger = logging.getLogger(__name__)

WRITE_INTERVAL_SECONDS = 2.0


def api_keys_record_use(*, last_used: dict[int, float]) -> None:
    """Store last-use times (epoch seconds by key id), never moving one backwards.

    One transaction a batch: one commit rather than one per key. In key id
    order, so that two processes writing the same keys never deadlock."""
    with transaction.atomic():
        for key_id, when in sorted(last_used.items()):
            moment = datetime.fromtimestamp(when, tz=UTC)
            APIKey.objects.filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=moment), pk=key_id
            ).update(last_used_at=moment)


def _merge(into: dict[int, float], uses: dict[int, float]) -> None:
    for key_id, when in uses.items():
        if when > into.get(key_id, float("-inf")):
            into[key_id] = when


class LastUsedWriter:
    """Writes the uses it is handed, in its own thread, then rests `interval`
    seconds before the next write: uses noted meanwhile go in one batch.

    A batch that cannot be written (the database down or hung) is kept and
    written with the next one, never retried in a loop: at most one attempt
    per hand-over, and at most one per interval.
    """

    def __init__(self, interval: float = WRITE_INTERVAL_SECONDS):
        self.interval = interval
        self._reset()
        # A forked child (gunicorn with --preload) has the fields but not the thread.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: dict[int, float] = {}
        self._failed: dict[int, float] = {}
        self._writing = False
        self._thread: threading.Thread | None = None

    def note(self, key_id: int, when: float) -> None:
        """Queue one use (epoch seconds); returns at once. The hot path's call."""
        with self._lock:
            if not self._pending:
                self._wake()  # the thread waits for a first use only
            if when > self._pending.get(key_id, float("-inf")):
                self._pending[key_id] = when

    def submit(self, last_used: dict[int, float]) -> None:
        """Queue uses for writing; returns at once."""
        if not last_used:
            return
        with self._lock:
            _merge(self._pending, last_used)
            self._wake()

    def write_now(self) -> None:
        """Write what is queued, now, in the calling thread."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if batch:
            api_keys_record_use(last_used=batch)

    def _wake(self) -> None:
        """The caller holds the lock."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="last-used-writer", daemon=True)
            self._thread.start()
        self._changed.notify_all()

    def wait_until_idle(self, timeout: float) -> bool:
        """Whether everything handed over was tried (written or kept) within `timeout`."""
        with self._lock:
            return self._changed.wait_for(lambda: not self._pending and not self._writing, timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(lambda: self._pending)
                batch, self._pending = self._pending, {}
                _merge(batch, self._failed)
                self._failed = {}
                self._writing = True
            try:
                api_keys_record_use(last_used=batch)
            except Exception as error:
                logger.warning("last_used_at of %d keys kept for the next write: %s", len(batch), error)
                with self._lock:
                    _merge(self._failed, batch)
            finally:
                # Writes are seconds apart at least: no reason to hold a connection in between.
                connections.close_all()
                with self._lock:
                    self._writing = False
                    self._changed.notify_all()
            time.sleep(self.interval)


last_used_writer = LastUsedWriter()
