"""The fault proxy itself, in front of a loopback echo server and of the real PostgreSQL."""

import contextlib
import socket
import socketserver
import threading

import psycopg
import pytest
from django.conf import settings

from .tcp_proxy import TCPProxy

# How long a test listens for bytes that must not come; a bound on waiting, not a measured figure.
QUIET_SECONDS = 0.3


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(4096):
            self.request.sendall(data)


class ThreadedServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo_server():
    server = ThreadedServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo_server):
    with TCPProxy(upstream=echo_server) as proxy:
        yield proxy


def connect(proxy) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=5)


def nothing_arrives(sock) -> bool:
    sock.settimeout(QUIET_SECONDS)
    try:
        return sock.recv(100) == b"unreachable"
    except TimeoutError:
        return True
    finally:
        sock.settimeout(5)


def closed_by_peer(sock) -> bool:
    """A FIN, or a reset when the connection was still waiting in the listen queue."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def test_it_forwards_both_ways(proxy):
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"


def test_a_stall_holds_the_bytes_until_it_forwards_again(proxy):
    with connect(proxy) as sock:
        sock.sendall(b"one")
        assert sock.recv(100) == b"one"
        proxy.stall()
        sock.sendall(b"two")
        assert nothing_arrives(sock)
        proxy.forward()
        assert sock.recv(100) == b"two"


def test_a_connection_opened_during_a_stall_is_accepted_and_held(proxy):
    proxy.stall()
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert nothing_arrives(sock)
        proxy.forward()
        assert sock.recv(100) == b"hello"


def test_a_cut_closes_open_connections_and_new_ones_are_forwarded(proxy):
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"
        proxy.cut()
        assert sock.recv(100) == b""
    with connect(proxy) as sock:
        sock.sendall(b"again")
        assert sock.recv(100) == b"again"


def test_refusing_closes_the_port_until_it_forwards_again(proxy):
    with connect(proxy) as sock:
        proxy.refuse()
        assert closed_by_peer(sock)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.forward()
    with connect(proxy) as sock:
        sock.sendall(b"back")
        assert sock.recv(100) == b"back"


def test_it_counts_open_and_accepted_connections(proxy):
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        sock.recv(100)
        assert (proxy.open_connections, proxy.accepted_connections) == (1, 1)
        proxy.cut()
        assert (proxy.open_connections, proxy.accepted_connections) == (0, 1)


def test_stop_releases_held_connections(echo_server):
    proxy = TCPProxy(upstream=echo_server).start()
    proxy.stall()
    sock = connect(proxy)
    proxy.stop()
    with contextlib.closing(sock):
        assert closed_by_peer(sock)


@pytest.fixture
def postgres_proxy():
    db = settings.DATABASES["default"]
    with TCPProxy(upstream=(db["HOST"], int(db["PORT"]))) as proxy:
        yield proxy


def postgres_through(proxy) -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=proxy.host, port=proxy.port, user=db["USER"], dbname=db["NAME"], connect_timeout=2
    )


def test_postgresql_answers_through_the_proxy_and_not_while_it_refuses(postgres_proxy, db):
    with postgres_through(postgres_proxy) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    postgres_proxy.refuse()
    with pytest.raises(psycopg.OperationalError):
        postgres_through(postgres_proxy)


def test_a_stalled_postgresql_times_out_new_connections(postgres_proxy, db):
    postgres_proxy.stall()
    with pytest.raises(psycopg.errors.ConnectionTimeout):
        postgres_through(postgres_proxy)
