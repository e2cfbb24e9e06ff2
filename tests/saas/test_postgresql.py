"""The PostgreSQL backend's timeouts (saas/postgresql/), on the real server, stalled through the fault proxy.

A stall lasts until the test ends it, so a call that returns at all was cut by
the backend; one that waited for the stall would hang the test.
"""

import pytest
from django.db import OperationalError, connection

from saas.postgresql.base import DatabaseWrapper
from saas.postgresql.watchdog import Unanswered
from tests.faults.postgres import postgres_proxy

pytestmark = pytest.mark.django_db


@pytest.fixture
def proxy():
    with postgres_proxy() as proxy:
        yield proxy


def through(proxy, **options) -> DatabaseWrapper:
    """A connection to the test database through `proxy`, with its own OPTIONS."""
    settings_dict = {
        **connection.settings_dict,
        "HOST": proxy.host,
        "PORT": str(proxy.port),
        "OPTIONS": {**connection.settings_dict["OPTIONS"], **options},
    }
    return DatabaseWrapper(settings_dict, alias="through_proxy")


@pytest.fixture
def faulty(proxy):
    """Statement timeout 1 s, connect timeout 2 s, and a backoff no test outlives."""
    wrapper = through(proxy, statement_timeout=1, connect_timeout=2, unreachable_backoff=3600)
    yield wrapper
    wrapper.close()


def select_one(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


def test_the_server_gets_the_statement_timeout_from_the_settings(settings):
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        shown = cursor.fetchone()[0]
    assert shown == f"{settings.DATABASE_STATEMENT_TIMEOUT_SECONDS:g}s"


def test_a_slow_statement_is_cancelled_by_the_server_and_the_connection_stays_usable(faulty):
    with pytest.raises(OperationalError, match="statement timeout"), faulty.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(30)")
    assert select_one(faulty) == 1


def test_a_query_on_a_stalled_server_is_cut(faulty, proxy):
    assert select_one(faulty) == 1
    proxy.stall()
    with pytest.raises(Unanswered, match="did not answer within 1.5 s"):
        select_one(faulty)


def test_a_commit_on_a_stalled_server_is_cut(faulty, proxy):
    faulty.set_autocommit(False)
    select_one(faulty)
    proxy.stall()
    with pytest.raises(Unanswered):
        faulty.commit()


def test_the_health_check_of_a_stalled_connection_fails_rather_than_waits(faulty, proxy):
    select_one(faulty)
    proxy.stall()
    assert faulty.is_usable() is False


def test_connecting_to_a_stalled_server_times_out(faulty, proxy):
    proxy.stall()
    with pytest.raises(OperationalError, match="timeout"):
        faulty.ensure_connection()


def test_after_a_timeout_the_process_does_not_wait_on_that_server_again(faulty, proxy):
    select_one(faulty)
    proxy.stall()
    with pytest.raises(Unanswered):
        select_one(faulty)
    accepted = proxy.accepted_connections
    other_thread = through(proxy, connect_timeout=2)  # another thread's connection to the same server
    with pytest.raises(OperationalError, match="not waiting on it again"):
        other_thread.ensure_connection()
    assert proxy.accepted_connections == accepted


def test_a_server_that_refused_is_connected_to_again_once_the_backoff_ends(proxy):
    refused = through(proxy, connect_timeout=2, unreachable_backoff=0)
    proxy.refuse()
    with pytest.raises(OperationalError, match="refused"):
        refused.ensure_connection()
    proxy.forward()
    assert select_one(through(proxy, connect_timeout=2, unreachable_backoff=0)) == 1


def test_our_options_are_not_passed_to_libpq(proxy):
    params = through(proxy, statement_timeout=2.5, unreachable_backoff=1).get_connection_params()
    assert "statement_timeout" not in params and "unreachable_backoff" not in params
    assert "-c statement_timeout=2500" in params["options"]
