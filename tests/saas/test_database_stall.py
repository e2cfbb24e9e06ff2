"""PostgreSQL stalled (connections open, no answer) or down, under gunicorn with DEBUG off.

The server reaches PostgreSQL through the fault proxy. A stall lasts until the
test ends the proxy's stall, so any answer at all proves the server gave up
waiting on its own; a request that waited for the stall to end would outlast
the client's timeout and fail the test.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from tests.faults.postgres import database_url, postgres_proxy
from tests.faults.server import fetch, gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "/api/v1/echo"
USAGE = "/api/v1/usage"
THREADS = 4  # gunicorn's threads per worker
# Far beyond the server's timeouts, short of the stall, which never ends on its own.
CLIENT_TIMEOUT = 20
RECOVERY_SECONDS = 30


@pytest.fixture(scope="module")
def proxy(django_db_setup):
    with postgres_proxy() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def server(proxy, tmp_path_factory):
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with gunicorn(log, workers=1, threads=THREADS, DATABASE_URL=database_url(proxy)) as base_url:
        yield base_url


def answering(url: str) -> bool:
    try:
        return fetch(url, timeout=CLIENT_TIMEOUT).status == 200
    except OSError:
        return False


def wait_until_answering(url: str) -> None:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while not answering(url):
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer 200 within {RECOVERY_SECONDS} s of PostgreSQL answering")
        time.sleep(0.2)


@pytest.fixture
def site(server, proxy):
    """The server, with PostgreSQL answering at the start and the end of each test."""
    proxy.forward()
    wait_until_answering(server + "/healthz")
    yield server
    proxy.forward()


def bearer(api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key.raw_key}"}


def test_healthz_answers_503_while_postgresql_stalls(site, proxy):
    proxy.stall()
    reply = fetch(site + "/healthz", timeout=CLIENT_TIMEOUT)
    assert reply.status == 503
    assert json.loads(reply.body)["checks"]["database"] == "unreachable"


def test_the_usage_api_answers_503_while_postgresql_stalls(site, proxy, api_key):
    assert fetch(site + USAGE, headers=bearer(api_key)).status == 200
    proxy.stall()
    reply = fetch(site + USAGE, headers=bearer(api_key), timeout=CLIENT_TIMEOUT)
    assert reply.status == 503
    assert json.loads(reply.body)["error"] == "database_unavailable"
    assert reply.headers["Retry-After"] == str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)


def test_the_pricing_page_answers_503_while_postgresql_stalls(site, proxy, default_tiers):
    proxy.stall()
    reply = fetch(site + "/pricing/", timeout=CLIENT_TIMEOUT)
    assert reply.status == 503
    assert reply.content_type.startswith("text/html")
    assert reply.headers["Retry-After"] == str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)


def test_a_cached_key_is_served_while_pages_wait_on_a_stalled_postgresql(site, proxy, api_key, default_tiers):
    assert fetch(site + ECHO, headers=bearer(api_key)).status == 200
    proxy.stall()
    with ThreadPoolExecutor(THREADS) as pool:
        # As many page requests as the server has threads, all needing the database.
        pages = [pool.submit(fetch, site + "/pricing/", timeout=CLIENT_TIMEOUT) for _ in range(THREADS)]
        echo = fetch(site + ECHO, headers=bearer(api_key), timeout=CLIENT_TIMEOUT)
        statuses = [page.result().status for page in pages]
    assert echo.status == 200
    assert statuses == [503] * THREADS


def test_pages_are_served_again_once_postgresql_answers(site, proxy, default_tiers):
    proxy.stall()
    assert fetch(site + "/pricing/", timeout=CLIENT_TIMEOUT).status == 503
    proxy.forward()
    wait_until_answering(site + "/pricing/")


def test_with_postgresql_down_pages_and_the_usage_api_answer_503_and_cached_keys_200(
    site, proxy, api_key, default_tiers
):
    assert fetch(site + ECHO, headers=bearer(api_key)).status == 200
    proxy.refuse()
    assert fetch(site + "/pricing/", timeout=CLIENT_TIMEOUT).status == 503
    assert fetch(site + USAGE, headers=bearer(api_key), timeout=CLIENT_TIMEOUT).status == 503
    assert fetch(site + ECHO, headers=bearer(api_key), timeout=CLIENT_TIMEOUT).status == 200
