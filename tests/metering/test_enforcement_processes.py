"""Enforcement across real processes: gunicorn with 4 workers on the test database and Redis.

The tests commit their data (transaction=True) so that the workers see it, and
drive the server from 32 threads in this process, on 127.0.0.1 only.
"""

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from django_redis import get_redis_connection

from apikeys.services import api_key_revoke
from metering.keys import redis_key
from plans.models import Customer
from plans.services import tiers_sync
from tests.faults.server import gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "/api/v1/echo"
THREADS = 32
STARTUP_SECONDS = 30
REQUEST_TIMEOUT_SECONDS = 10
# Every worker re-reads the context version at least once a second.
PROPAGATION_SECONDS = 1.1


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    """Base URL of gunicorn (4 workers, 8 threads each) serving the test database."""
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    # These tests are about exact admission from many processes, not about a
    # hung Redis: 400 requests at once on a busy 2-core machine can keep a
    # reply from a healthy Redis past the production 0.2 s, which would open
    # the breaker (tests/metering/test_redis_down.py covers that).
    with gunicorn(log, workers=4, threads=8, REDIS_TIMEOUT_SECONDS="2") as base_url:
        yield base_url


def get(url: str, raw_key: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {raw_key}"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def hammer(url: str, raw_key: str, count: int) -> list[tuple[int, dict]]:
    """`count` requests from THREADS threads at once."""
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda _: get(url, raw_key), range(count)))


def status_counts(results) -> dict[int, int]:
    return dict(Counter(status for status, _ in results))


def quota_counter(customer) -> int:
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    key = redis_key("quota", customer.pk, int(month_start.timestamp()))
    return int(get_redis_connection("default").get(key) or 0)


def unlimited_burst(customer, **fields) -> None:
    Customer.objects.filter(pk=customer.pk).update(burst_override=100_000, **fields)


def test_concurrent_requests_to_every_worker_admit_exactly_the_quota(server, customer, api_key):
    unlimited_burst(customer, quota_override=100)
    results = hammer(server + ECHO, api_key.raw_key, 400)
    assert status_counts(results) == {200: 100, 429: 300}
    assert {body["error"] for status, body in results if status == 429} == {"quota_exceeded"}
    assert quota_counter(customer) == 100


def test_a_revocation_reaches_every_worker_within_a_second(server, customer, api_key):
    unlimited_burst(customer)
    assert status_counts(hammer(server + ECHO, api_key.raw_key, 40)) == {200: 40}
    api_key_revoke(api_key=api_key.api_key)
    time.sleep(PROPAGATION_SECONDS)
    results = hammer(server + ECHO, api_key.raw_key, 40)
    assert [(status, body["error"]) for status, body in results] == [(401, "revoked_key")] * 40


def test_a_tier_quota_change_reaches_every_worker_within_a_second(server, customer, api_key):
    unlimited_burst(customer)
    assert status_counts(hammer(server + ECHO, api_key.raw_key, 40)) == {200: 40}
    tiers_sync(declared_tiers={"free": {"quota": 45}}, force=True)
    time.sleep(PROPAGATION_SECONDS)
    assert status_counts(hammer(server + ECHO, api_key.raw_key, 40)) == {200: 5, 429: 35}
