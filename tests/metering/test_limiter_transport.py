"""The limiter's own read of one-line replies (metering.limiter._send_line), on real Redis."""

import pytest
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError

from metering.limiter import _bulk, _connection, _line_round_trip, _send_line


def packed(*items):
    return b"*%d\r\n" % len(items) + b"".join(map(_bulk, items))


def send(*items):
    return _send_line(get_redis_connection("default"), packed(*items), items)


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
    assert _line_round_trip(connection, packed("PING")) == b"PONG"
    assert trickle.reads == 4  # "+P", "ON", "G\r", "\n"
    assert _line_round_trip(connection, packed("INCRBY", "transport:counter", 12345)) == 12345


def test_a_reply_of_several_lines_is_refused_and_the_connection_dropped():
    with pytest.raises(InvalidResponse, match="not a one-line reply"):
        send("ECHO", "hello")
    assert send("PING") == b"PONG"  # on a new connection: nothing of the echo is left


def test_a_server_closing_mid_reply_raises_a_connection_error(connection):
    connection._sock = TrickleSocket(connection._sock, size=2, then_close=True)
    with pytest.raises(RedisConnectionError, match="closed the connection"):
        _line_round_trip(connection, packed("PING"))
