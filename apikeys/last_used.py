"""Last-use times of keys: noted per process on the hot path (KeyContextCache),
handed over at most once a minute per process, and written here by a thread
of the process's own, so that a slow or unreachable database never delays or
fails a request."""

import logging
import os
import threading
from datetime import UTC, datetime

from django.db import connections
from django.db.models import Q

from .models import APIKey

logger = logging.getLogger(__name__)


def api_keys_record_use(*, last_used: dict[int, float]) -> None:
    """Store last-use times (epoch seconds by key id), never moving one backwards."""
    for key_id, when in last_used.items():
        moment = datetime.fromtimestamp(when, tz=UTC)
        APIKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=moment), pk=key_id).update(
            last_used_at=moment
        )


def _merge(into: dict[int, float], uses: dict[int, float]) -> None:
    for key_id, when in uses.items():
        if when > into.get(key_id, float("-inf")):
            into[key_id] = when


class LastUsedWriter:
    """Writes the batches it is handed, one at a time, in its own thread.

    A batch that cannot be written (the database down or hung) is kept and
    written with the next one, never retried in a loop: at most one attempt
    per hand-over, that is per minute and process.
    """

    def __init__(self):
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

    def submit(self, last_used: dict[int, float]) -> None:
        """Queue uses for writing; returns at once."""
        if not last_used:
            return
        with self._lock:
            _merge(self._pending, last_used)
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
                # One write a minute: no reason to hold a connection in between.
                connections.close_all()
                with self._lock:
                    self._writing = False
                    self._changed.notify_all()


last_used_writer = LastUsedWriter()
