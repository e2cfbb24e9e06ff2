"""Deadlines on PostgreSQL round trips, and the memory that a server stopped answering.

The server's statement_timeout cancels a slow query, but only a server that
runs can cancel anything: a hung server, or a network that holds the packets,
leaves the client waiting on its socket forever (libpq has no read timeout).
So one thread per process watches the round trips in flight and shuts down the
socket of any that outlives its deadline; the waiting thread wakes at once
with an error, and its connection is dropped.
"""

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError

from core.breaker import Breaker

Result = TypeVar("Result")


class Unanswered(OperationalError):
    """PostgreSQL did not answer in time: the round trip was cut."""


class Watchdog:
    def __init__(self):
        self._tickets = itertools.count()
        self._reset()
        # A forked child (gunicorn with --preload) has the fields but not the thread.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._watched: dict[int, tuple[float, int]] = {}  # ticket -> (deadline, socket's fd)
        self._cut: set[int] = set()
        self._nearest = float("inf")
        self._thread: threading.Thread | None = None

    def call(self, fileno: int, seconds: float, function: Callable[[], Result]) -> Result:
        """function(), its socket shut down if it runs over `seconds`; then Unanswered."""
        ticket = self._watch(fileno, time.monotonic() + seconds)
        try:
            result = function()
        except Exception as error:
            if self._release(ticket):
                raise Unanswered(f"PostgreSQL did not answer within {seconds:g} s.") from error
            raise
        except BaseException:
            # Interrupted (a worker told to stop): let go of the socket all the
            # same, or its fd, once reused, could be shut down later.
            self._release(ticket)
            raise
        if self._release(ticket):
            # Cut just as the answer came (or the function swallowed the error,
            # as Django's health check does): the connection is broken either way.
            raise Unanswered(f"PostgreSQL did not answer within {seconds:g} s.")
        return result

    def _watch(self, fileno: int, deadline: float) -> int:
        ticket = next(self._tickets)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="postgresql-watchdog", daemon=True)
                self._thread.start()
            self._watched[ticket] = (deadline, fileno)
            if deadline < self._nearest:
                self._nearest = deadline
                self._wakeup.notify()
        return ticket

    def _release(self, ticket: int) -> bool:
        """Stop watching; whether the round trip was cut. The lock keeps the
        watchdog from shutting down a socket its thread has already let go of
        (the fd could by then belong to another connection)."""
        with self._lock:
            self._watched.pop(ticket, None)
            if ticket in self._cut:
                self._cut.discard(ticket)
                return True
            return False

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for ticket, (deadline, fileno) in list(self._watched.items()):
                    if deadline <= now:
                        del self._watched[ticket]
                        self._cut.add(ticket)
                        _shut_down(fileno)
                deadlines = [deadline for deadline, _ in self._watched.values()]
                self._nearest = min(deadlines, default=float("inf"))
                self._wakeup.wait(self._nearest - now if self._watched else None)


def _shut_down(fileno: int) -> None:
    """Shut the socket down (the other thread's wait ends with an error); its
    owner still closes it. A duplicate descriptor, so closing ours closes nothing of theirs."""
    try:
        sock = socket.socket(fileno=os.dup(fileno))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


watchdog = Watchdog()
_servers: dict[tuple[str, str], Breaker] = {}
_servers_lock = threading.Lock()


def server_breaker(host: str, port: str, backoff: float) -> Breaker:
    """Per server: after it failed to answer (or refused), fail at once for
    `backoff` seconds rather than let every request wait out a timeout, then
    let one caller probe; logged once as it starts and once as it ends."""
    breaker = _servers.get((host, port))  # every round trip asks: no lock on the way
    if breaker is None:
        with _servers_lock:
            breaker = _servers.setdefault((host, port), Breaker(f"PostgreSQL {host}:{port}", backoff=backoff))
    return breaker


def server_breakers_reset() -> None:
    """Forget every server's breaker (tests that refuse and then forward a server)."""
    with _servers_lock:
        _servers.clear()
