"""The wire module: the check's round trip on redis-py's internals, on real
Redis, and its fence: any other redis-py version takes the public path."""

from datetime import UTC, datetime

import pytest
import redis
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError

from metering.limiter import Limits, RedisLimiter, wire
from metering.limiter.wire import _connection, line_round_trip, pack, send_line
from plans.periods import period_bounds

NOW_MS = 1_800_000_000_000


def packed(*items):
    return pack(*items)


def send(*items):
    return send_line(get_redis_connection("default"), packed(*items), items)


def make_limits(quota=1_000):
    start, end = period_bounds("month", datetime.fromtimestamp(NOW_MS / 1000, UTC))
    return Limits(customer_id=1, burst=5, quota=quota, period_start=start, period_end=end)


@pytest.mark.parametrize(
    ("version", "supported"),
    [("8.1.0", True), ("8.1.12", True), ("8.2.0", False), ("8.10.0", False), ("7.4.2", False), ("9", False)],
)
def test_the_version_check_accepts_only_the_minor_versions_tested(version, supported):
    assert wire.version_supported(version) is supported


def test_the_installed_redis_py_is_a_version_the_fast_path_was_tested_on():
    # Failing here after an upgrade: run this file on the new version, then add it to SUPPORTED.
    assert wire.version_supported(redis.__version__), redis.__version__
    assert wire.FAST


def test_a_check_on_the_fast_path_reads_its_reply_off_the_threads_own_connection(monkeypatch):
    client = get_redis_connection("default")
    limiter = RedisLimiter(client)
    limiter.check(make_limits(), now_ms=NOW_MS)  # loads the script, measures Redis's clock
    read, public = [], []
    monkeypatch.setattr(wire, "line_round_trip", lambda *args: read.append(args) or line_round_trip(*args))
    monkeypatch.setattr(client, "execute_command", lambda *items, **options: public.append(items))
    assert limiter.check(make_limits(), now_ms=NOW_MS).quota_used == 2
    assert len(read) == 1 and public == []


def test_with_another_redis_py_a_check_touches_none_of_its_internals(monkeypatch, public_redis_path):
    def private(*args):
        raise AssertionError("redis-py's internals used on an unsupported version")

    monkeypatch.setattr(wire, "_connection", private)
    monkeypatch.setattr(wire, "line_round_trip", private)
    limiter = RedisLimiter(get_redis_connection("default"))
    assert [limiter.check(make_limits(quota=2), now_ms=NOW_MS).quota_used for _ in range(3)] == [1, 2, 2]


def test_with_another_redis_py_a_check_loads_the_script_redis_lost(public_redis_path):
    client = get_redis_connection("default")
    limiter = RedisLimiter(client)
    limiter.check(make_limits(), now_ms=NOW_MS)
    client.script_flush()
    assert limiter.check(make_limits(), now_ms=NOW_MS).quota_used == 2


def test_with_another_redis_py_a_command_goes_through_the_client(public_redis_path):
    assert send("INCRBY", "transport:counter", 41) == 41


def test_a_status_reply_is_its_text():
    assert send("PING") == b"PONG"


def test_an_integer_reply_is_an_int():
    assert send("INCRBY", "transport:counter", 41) == 41
    assert send("INCR", "transport:counter") == 42


def test_a_missing_script_raises_redis_pys_no_script_error():
    with pytest.raises(NoScriptError):
        send("EVALSHA", "0" * 40, 0)


def test_an_error_reply_raises_a_response_error_and_leaves_the_connection_usable():
    with pytest.raises(ResponseError, match="unknown command"):
        send("NO-SUCH-COMMAND")
    assert send("PING") == b"PONG"


class TrickleSocket:
    """The connection's real socket, but each recv() returns at most `size` bytes
    and, with `then_close`, nothing after the first piece (a server going away)."""

    def __init__(self, sock, size, then_close=False):
        self.sock, self.size, self.then_close, self.reads = sock, size, then_close, 0

    def sendall(self, data):
        self.sock.sendall(data)

    def recv(self, size):
        self.reads += 1
        if self.then_close and self.reads > 1:
            return b""
        return self.sock.recv(min(size, self.size))


@pytest.fixture
def connection():
    connection = _connection(get_redis_connection("default").connection_pool)
    real = connection._sock
    yield connection
    connection._sock = real
    connection.disconnect()


def test_a_reply_that_arrives_in_pieces_is_read_whole(connection):
    trickle = TrickleSocket(connection._sock, size=2)
    connection._sock = trickle
    assert line_round_trip(connection, packed("PING")) == b"PONG"
    assert trickle.reads == 4  # "+P", "ON", "G\r", "\n"
    assert line_round_trip(connection, packed("INCRBY", "transport:counter", 12345)) == 12345


def test_a_reply_of_several_lines_is_refused_and_the_connection_dropped():
    with pytest.raises(InvalidResponse, match="not a one-line reply"):
        send("ECHO", "hello")
    assert send("PING") == b"PONG"  # on a new connection: nothing of the echo is left


def test_a_server_closing_mid_reply_raises_a_connection_error(connection):
    connection._sock = TrickleSocket(connection._sock, size=2, then_close=True)
    with pytest.raises(RedisConnectionError, match="closed the connection"):
        line_round_trip(connection, packed("PING"))
