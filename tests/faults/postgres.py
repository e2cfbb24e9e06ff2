"""The test database behind a TCPProxy: for this process's connection or for a server's URL."""

import contextlib

from django.conf import settings
from django.db import connection

from .tcp_proxy import TCPProxy


def _database() -> dict:
    return settings.DATABASES["default"]


@contextlib.contextmanager
def postgres_proxy():
    """A proxy in front of the test database's server."""
    database = _database()
    with TCPProxy(upstream=(database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432))) as proxy:
        yield proxy


def database_url(proxy: TCPProxy) -> str:
    """DATABASE_URL for a child process (gunicorn, a worker) to reach the test database through `proxy`."""
    database = _database()
    return f"postgres://{database['USER']}@{proxy.host}:{proxy.port}/{database['NAME']}"


@contextlib.contextmanager
def default_connection_through(proxy: TCPProxy):
    """Send this process's default connection through `proxy` (threads opened meanwhile too).

    The settings dict is the one every thread's connection is made from, so
    a thread started inside the block also goes through the proxy. Needs
    django_db(transaction=True): the test's own transaction would be lost
    with the connection it was opened on.
    """
    database = connection.settings_dict
    saved = database["HOST"], database["PORT"]
    connection.close()
    database["HOST"], database["PORT"] = proxy.host, str(proxy.port)
    try:
        yield
    finally:
        connection.close()
        database["HOST"], database["PORT"] = saved
