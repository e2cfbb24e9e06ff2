"""A settle Redis could not take after the view is retried by a real Celery
worker and applied exactly once, on a private redis-server that stalls.

The request path: a request admitted and billed at the check, whose view
answers 404 while Redis sleeps (DEBUG SLEEP). The settle that unbills it
times out; Redis runs it late, past its deadline, so it changes nothing; the
worker's retry unbills the 404 once. Not billed, not refunded twice.
"""

import pytest
import redis
from django.test import override_settings
from rest_framework.test import APIClient

from apikeys.services import api_key_create
from metering.keys import pending_key
from metering.tasks import settle_again
from saas.celery import app
from tests.celery_worker import running_worker, wait_for
from tests.metering.test_limiter_redis_faults import RedisServer
from tests.metering.urls import MissingWhileRedisStallsView

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.metering.urls")]

TIMEOUT_SECONDS = 0.2


@pytest.fixture
def private_redis(tmp_path):
    # Durable, so that a kill and a restart on the same port keep the usage.
    server = RedisServer(tmp_path, persistence=("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    cache = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": TIMEOUT_SECONDS, "SOCKET_TIMEOUT": TIMEOUT_SECONDS},
    }
    with override_settings(REDIS_URL=url, CACHES={"default": cache}):
        yield server
    server.kill()


@pytest.fixture
def worker_on_private_redis(private_redis, tmp_path, via_broker):
    with running_worker(tmp_path, name="settle") as worker:
        saved = app.conf.task_default_queue
        app.conf.task_default_queue = worker.queue  # settle_again.delay() goes to this worker
        yield worker
        app.conf.task_default_queue = saved


def client_for(customer) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(customer=customer, name='ci').raw_key}")
    return client


def pending_fields(server, customer) -> dict[str, int]:
    raw = redis.Redis(port=server.port).hgetall(pending_key(customer.pk))
    return {name.decode(): int(value) for name, value in raw.items()}


def test_a_failure_whose_unbill_found_redis_down_is_unbilled_by_the_worker_once_it_is_back(
    worker_on_private_redis, private_redis, customer, monkeypatch
):
    client = client_for(customer)
    assert client.get("/api/v1/report").status_code == 200  # 3 units, billed
    monkeypatch.setattr(MissingWhileRedisStallsView, "during_view", private_redis.kill)
    assert client.get("/api/v1/missing-while-redis-stalls").status_code == 404
    private_redis.start(private_redis.port)  # back, with the 404 still billed from the check

    def unbilled():
        fields = pending_fields(private_redis, customer)
        return not any("missing-while-redis-stalls" in name for name in fields) and fields

    assert sum(wait_for(unbilled, "unbill the 404").values()) == 3


def test_a_failure_whose_unbill_timed_out_is_unbilled_once_by_the_worker(
    worker_on_private_redis, private_redis, customer, monkeypatch
):
    client = client_for(customer)
    assert client.get("/api/v1/report").status_code == 200  # 3 units, billed

    sleepers = []
    monkeypatch.setattr(
        MissingWhileRedisStallsView,
        "during_view",
        lambda: sleepers.append(private_redis.sleep_in_background(1)),
    )
    assert client.get("/api/v1/missing-while-redis-stalls").status_code == 404
    sleepers[0].join()  # Redis woke and ran the late settle: past its deadline, it did nothing

    admin = redis.Redis(port=private_redis.port)

    def unbilled():
        fields = pending_fields(private_redis, customer)
        return not any("missing-while-redis-stalls" in name for name in fields) and fields

    fields = wait_for(unbilled, "unbill the 404")
    assert sum(fields.values()) == 3  # the report's units only: the 404 unbilled once, not twice
    (counter,) = admin.keys(f"*:quota:{{c{customer.pk}}}:*")
    assert admin.get(counter) == b"3"
    assert settle_again.name in worker_on_private_redis.log.read_text()
