"""Django's PostgreSQL backend, never waiting on the server longer than its timeouts.

settings.py uses it for every postgres:// DATABASE_URL. Its OPTIONS, beyond
psycopg's own (`connect_timeout` among them: whole seconds, at least 2):

- `statement_timeout` (seconds): sent to the server, which cancels a slower
  statement, and enforced here as well, a little later, for a server or a
  network that does not answer at all (watchdog.py);
- `server_statement_timeout` (default true): also send statement_timeout to
  the server at connect; false behind a transaction pooler (pgbouncer),
  which refuses startup options;
- `unreachable_backoff` (seconds, default 1): after a round trip or a
  connection timed out, how long the process fails database work at once
  rather than wait on the server again.

Bounded here: each query, commit and rollback by the statement timeout;
connecting, its set-up and Django's health check by the connect timeout.
Whatever gives up raises django.db's OperationalError.
"""

from django.db import OperationalError
from django.db.backends.postgresql import base

from .watchdog import Unanswered, server_breaker, watchdog

# The server's own statement_timeout fires first and leaves the connection
# usable; the client cuts only what the server could not cancel.
GRACE_SECONDS = 0.5
DEFAULT_BACKOFF_SECONDS = 1.0
OUR_OPTIONS = ("statement_timeout", "unreachable_backoff", "server_statement_timeout")


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, settings_dict, alias="default"):
        super().__init__(settings_dict, alias)
        options = settings_dict["OPTIONS"]
        connect_timeout = options.get("connect_timeout")
        # libpq (and psycopg) treat anything under 2 s as 2 s.
        self.connect_seconds = max(int(connect_timeout), 2) if connect_timeout else None
        statement_timeout = options.get("statement_timeout")
        self.statement_timeout = float(statement_timeout) if statement_timeout else None
        self.unreachable_backoff = float(options.get("unreachable_backoff", DEFAULT_BACKOFF_SECONDS))
        self.execute_wrappers.append(self._bounded_execute)

    def get_connection_params(self):
        params = super().get_connection_params()
        for name in OUR_OPTIONS:
            params.pop(name, None)
        # False behind a transaction pooler, which refuses startup `options`:
        # the watchdog alone bounds a statement then.
        if self.statement_timeout and self.settings_dict["OPTIONS"].get("server_statement_timeout", True):
            milliseconds = round(self.statement_timeout * 1000)
            params["options"] = f"{params.get('options', '')} -c statement_timeout={milliseconds}".strip()
        return params

    def get_new_connection(self, conn_params):
        breaker = self._breaker(conn_params.get("host"), conn_params.get("port"))
        self._check_breaker(breaker, self.connect_seconds)
        try:
            connection = super().get_new_connection(conn_params)
        except (base.Database.errors.ConnectionTimeout, base.Database.OperationalError) as error:
            breaker.failed(error)  # hung, refused or turned away: down either way
            raise
        breaker.succeeded()
        return connection

    def _breaker(self, host, port):
        """The breaker of the server a connection is (being) made to: its
        address, not the settings', which a test or a failover may change."""
        return server_breaker(str(host or ""), str(port or ""), self.unreachable_backoff)

    def _check_breaker(self, breaker, probe_seconds: float | None) -> None:
        if not breaker.allow(probe_seconds):
            raise OperationalError("PostgreSQL did not answer a moment ago; not waiting on it again yet.")

    def init_connection_state(self):
        self._bounded(self.connect_seconds, super().init_connection_state)

    def is_usable(self):
        # Django's health check (a SELECT 1): a server that cannot answer it
        # within the connect timeout is as good as gone.
        try:
            return self._bounded(self.connect_seconds, super().is_usable)
        except OperationalError:
            return False

    def commit(self):
        self._bounded(self._round_trip_seconds(), super().commit)

    def rollback(self):
        self._bounded(self._round_trip_seconds(), super().rollback)

    def _bounded_execute(self, execute, sql, params, many, context):
        return self._bounded(self._round_trip_seconds(), lambda: execute(sql, params, many, context))

    def _bounded(self, seconds: float | None, function):
        """function(), cut if PostgreSQL has not answered within `seconds`."""
        if seconds is None or self.connection is None or self.connection.closed:
            return function()  # nothing to bound, or nothing that can wait
        try:
            fileno = self.connection.fileno()
        except base.Database.Error:
            return function()  # the connection is already broken: it fails at once
        breaker = self._breaker(self.connection.info.host, self.connection.info.port)
        self._check_breaker(breaker, seconds)
        try:
            result = watchdog.call(fileno, seconds, function)
        except Unanswered as error:
            breaker.failed(error)
            raise
        except Exception:
            breaker.succeeded()  # an error, but an answer
            raise
        breaker.succeeded()
        return result

    def _round_trip_seconds(self) -> float | None:
        return self.statement_timeout + GRACE_SECONDS if self.statement_timeout else None
