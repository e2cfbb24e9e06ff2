"""The check's round trip on redis-py's internals: the one module that reads them.

Why: the check is the one Redis call of every API request. Sent on a
connection kept per thread, packed once per period, with its one-line reply
read straight off the socket, it costs the client under a third of what it
costs through redis-py's pool and parser (benchmarks/limiter.py: "raw floor"
against "floor"). That means reading redis-py's private
`Connection._sock` and `Connection._parser`, so it is done only on the
redis-py versions this module is tested with (SUPPORTED, checked at import)
and only for a client with a plain connection pool. Anywhere else (another
redis-py, Redis Cluster) the same EVALSHA goes through the client's public
`execute_command`, as redis-py's own Script sends it.
"""

import hashlib
import os
import re
import select
import threading
from dataclasses import dataclass

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

# redis-py (major, minor) versions tests/metering/test_limiter_wire.py passes on.
SUPPORTED = frozenset({(8, 1)})


def version_supported(version: str) -> bool:
    match = re.match(r"(\d+)\.(\d+)(?!\d)", version)
    return match is not None and (int(match[1]), int(match[2])) in SUPPORTED


FAST = version_supported(redis.__version__)  # read at each call, so tests can take the public path


def bulk(value) -> bytes:
    """One RESP bulk string, as redis-py would encode `value`."""
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack(*items) -> bytes:
    """A command in Redis's wire format."""
    return b"*%d\r\n" % len(items) + b"".join(map(bulk, items))


@dataclass(frozen=True)
class Prepared:
    """A script call's keys and leading arguments, for calls that add the rest."""

    items: tuple  # ("EVALSHA", sha, key count, *keys, *leading arguments)
    head: bytes  # the same in Redis's wire format, its array header counting the rest


class LineScript:
    """A Lua script whose reply is one line (a status, an integer or an error)."""

    def __init__(self, source: str, *, per_call: int):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.per_call = per_call  # arguments each call adds to a Prepared

    def prepare(self, keys: tuple, leading: tuple) -> Prepared:
        items = ("EVALSHA", self.sha, len(keys), *keys, *leading)
        return Prepared(items, b"*%d\r\n" % (len(items) + self.per_call) + b"".join(map(bulk, items)))

    def __call__(self, client, prepared: Prepared, args: tuple):
        """EVALSHA with `args` after the prepared part; loads the script first
        if Redis lost its script cache (a restart)."""
        try:
            return self._send(client, prepared, args)
        except NoScriptError:
            client.script_load(self.source)
            return self._send(client, prepared, args)

    def _send(self, client, prepared: Prepared, args: tuple):
        pool = getattr(client, "connection_pool", None)
        if FAST and hasattr(pool, "connection_class"):
            return _round_trip(pool, prepared.head + b"".join(map(bulk, args)))
        return client.execute_command(*prepared.items, *args)


def send_line(client, packed: bytes, items: tuple):
    """Any command whose reply is one line: `packed` in Redis's wire format,
    `items` the same unpacked for the public path."""
    pool = getattr(client, "connection_pool", None)
    if FAST and hasattr(pool, "connection_class"):
        return _round_trip(pool, packed)
    return client.execute_command(*items)


def _round_trip(pool, packed: bytes):
    connection = _connection(pool)
    # On a connection or timeout error: drop the socket (a half-read reply must
    # not be read by the next call) and, as the client does, retry per its policy.
    return connection.retry.call_with_retry(
        lambda: line_round_trip(connection, packed), lambda error: connection.disconnect()
    )


class _ThreadConnection(threading.local):
    connection = None
    pool = None
    pid = None
    sock = None
    poller = None


_thread_connection = _ThreadConnection()


def _connection(pool, reconnected: bool = False):
    """The Redis connection this thread keeps for the limiter, ready to use.

    Not one from the pool: measured here, the pool's checkout and return, its
    locks and the command dispatch around them cost more client CPU than the
    round trip itself. It is redis-py's own Connection, made with the pool's
    settings (AUTH, SELECT, TLS, timeouts, retry policy) but outside its
    count: the pool never gets it back, and its max_connections is for its own.
    """
    local = _thread_connection
    pid = os.getpid()
    if local.connection is None or local.pool is not pool or local.pid != pid:
        # A new thread, a new client, or a forked child (never share a parent's socket).
        local.connection, local.pool, local.pid = pool.connection_class(**pool.connection_kwargs), pool, pid
        local.sock = None
    connection = local.connection
    if connection._sock is None:
        connection.connect()
    if connection._sock is not local.sock:
        local.sock, local.poller = connection._sock, select.poll()
        local.poller.register(local.sock, select.POLLIN)
    # Nothing is owed to us between calls: a socket that reads as ready was
    # closed by the server (a Redis restart). Reconnect rather than fail the
    # request, as the pool does on checkout; one poll() is the whole check.
    if local.poller.poll(0):
        connection.disconnect()
        if reconnected:  # a fresh connection already reads as closed: Redis refuses us
            raise RedisConnectionError("Redis closed a new connection at once")
        return _connection(pool, reconnected=True)
    return connection


def line_round_trip(connection, packed: bytes) -> bytes | int:
    """Sends `packed` and reads its one-line reply straight off the socket: a
    one-line reply needs none of redis-py's parser, and skipping it saves about
    a fifth of the check's client instructions (make bench-instructions)."""
    if connection._sock is None:  # dropped by a failed try: the retry reconnects
        connection.connect()
    sock = connection._sock
    try:
        sock.sendall(packed)
        reply = sock.recv(4096)
        while not reply.endswith(b"\r\n"):
            more = sock.recv(4096)
            if not more:
                raise RedisConnectionError("Redis closed the connection before replying")
            reply += more
    except TimeoutError as error:
        raise RedisTimeoutError(f"Timeout talking to Redis: {error}") from error
    except OSError as error:
        raise RedisConnectionError(f"Error talking to Redis: {error}") from error
    return _line_reply(connection, reply)


def _line_reply(connection, reply: bytes) -> bytes | int:
    if reply[:1] == b"+":
        return reply[1:-2]
    if reply[:1] == b":":
        return int(reply[1:-2])
    if reply[:1] == b"-":  # the same exception classes redis-py's parser raises
        error = connection._parser.parse_error(reply[1:-2].decode())
        if isinstance(error, ReadOnlyError):
            # A master demoted by a failover (Redis Sentinel): as redis-py's
            # Sentinel connection does, drop it; the next connect asks the
            # Sentinels for the new master.
            connection.disconnect()
            raise RedisConnectionError("the Redis master is now a replica") from error
        raise error
    # A reply of several lines: the command was not one for this reader. Drop
    # the connection (the rest of the reply may still be coming) and fail.
    connection.disconnect()
    raise InvalidResponse(f"not a one-line reply: {reply[:40]!r}")
