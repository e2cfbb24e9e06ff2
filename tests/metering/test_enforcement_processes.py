"""Enforcement across real processes: gunicorn with 4 workers on the test database and Redis.

The tests commit their data (transaction=True) so that the workers see it, and
drive the server from 32 threads in this process, on 127.0.0.1 only.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django_redis import get_redis_connection

from apikeys.services import api_key_revoke
from metering.keys import redis_key
from plans.models import Customer
from plans.services import tiers_sync
from tests.utils import stop

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "/api/v1/echo"
THREADS = 32
STARTUP_SECONDS = 30
REQUEST_TIMEOUT_SECONDS = 10
# Every worker re-reads the context version at least once a second.
PROPAGATION_SECONDS = 1.1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RATE_LIMIT_", "KEY_CONTEXT_", "BILLING_"))
    }
    return {
        **env,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "API_KEY_PEPPER": settings.API_KEY_PEPPER,
        "ALLOWED_HOSTS": "127.0.0.1",
        # These tests are about exact admission from many processes, not about
        # a hung Redis: 400 requests at once on a busy 2-core machine can keep a
        # reply from a healthy Redis past the production 0.2 s, which would
        # open the breaker (tests/metering/test_redis_down.py covers that).
        "REDIS_TIMEOUT_SECONDS": "2",
    }


def wait_until_healthy(process: subprocess.Popen, base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not become healthy in {STARTUP_SECONDS} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    """Base URL of gunicorn (4 workers, 8 threads each) serving the test database."""
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    command = [str(Path(sys.executable).with_name("gunicorn")), "saas.wsgi", "-w", "4", "--threads", "8"]
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [*command, "-b", f"127.0.0.1:{port}"],
            cwd=settings.BASE_DIR,
            env=server_environment(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(process, base_url, log)
        yield base_url
    finally:
        stop(process)


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
    tiers_sync(declared_tiers={"free": {"quota": 45}})
    time.sleep(PROPAGATION_SECONDS)
    assert status_counts(hammer(server + ECHO, api_key.raw_key, 40)) == {200: 5, 429: 35}
