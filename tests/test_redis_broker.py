"""Celery on a Redis broker (CELERY_BROKER_URL=redis://...), the broker the
stack already has: kombu's Redis transport and what it needs are installed by
requirements.txt, and a real worker starts on it and runs a task."""

import re
from importlib.metadata import requires

import pytest
from django.conf import settings

from metering.tasks import flush_usage_task
from saas.celery import app
from tests.celery_worker import running_worker, send, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def requirement_names(path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)(\[([a-z0-9,]+)\])?==", line.strip())
        if match:
            names.add(match[1].lower())
            names.update(f"{match[1].lower()}[{extra}]" for extra in (match[3] or "").split(",") if extra)
    return names


def test_requirements_install_what_kombus_redis_transport_needs():
    """kombu's Redis transport imports more than redis-py (its `redis` extra):
    without it, a worker on a Redis broker crashes at start."""
    pinned = requirement_names(settings.BASE_DIR / "requirements.txt")
    transport_needs = {
        re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower()
        for requirement in requires("kombu")
        if 'extra == "redis"' in requirement
    }
    assert transport_needs  # kombu still has the extra
    assert transport_needs <= pinned or {"celery[redis]", "kombu[redis]"} & pinned


@pytest.fixture
def via_redis_broker():
    """Send tasks to the suite's own Redis database, not run them in this process."""
    saved = app.conf.task_always_eager, app.conf.broker_url
    app.conf.task_always_eager, app.conf.broker_url = False, settings.REDIS_URL
    yield settings.REDIS_URL
    app.conf.task_always_eager, app.conf.broker_url = saved


def test_a_worker_on_a_redis_broker_starts_and_runs_a_task(tmp_path, via_redis_broker):
    with running_worker(tmp_path, name="redis-broker", broker=via_redis_broker) as worker:
        task_id = send(flush_usage_task, worker)
        wait_for(lambda: worker.ran(task_id), f"run the flush task {task_id}")
