"""A real Celery worker process for tests whose behaviour depends on one.

The worker runs on the test database and Redis and consumes a queue of its
own (a new name each run), so stale messages and other workers on the same
broker never interfere. Tests that use it commit their data
(django_db(transaction=True)) so that the worker sees it.
"""

import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from saas.celery import app
from tests.utils import stop

BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
STARTUP_SECONDS = 30
TASK_SECONDS = 30


def worker_environment() -> dict[str, str]:
    db = settings.DATABASES["default"]
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "DATABASE_TIMEOUTS": "task",  # as README starts workers
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }


def wait_until_ready(process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}:\n{log.read_text()}")
        if " ready." in log.read_text():
            return
        time.sleep(0.1)
    pytest.fail(f"the Celery worker was not ready in {STARTUP_SECONDS} s:\n{log.read_text()}")


def delete_queue(queue: str, broker: str = BROKER_URL) -> None:
    with app.connection_for_write(broker) as conn:
        conn.default_channel.queue_delete(queue)


@dataclass(frozen=True)
class Worker:
    queue: str
    log: Path
    process: subprocess.Popen
    broker: str = BROKER_URL

    def ran(self, task_id: str) -> bool:
        return f"[{task_id}] succeeded" in self.log.read_text()

    def gave_up(self, task_id: str) -> bool:
        """The task raised instead of asking for a retry: Celery schedules no
        further attempt of it (a retry logs "retry:" under the same id)."""
        return f"[{task_id}] raised unexpected" in self.log.read_text()


@contextlib.contextmanager
def running_worker(
    log_dir: Path,
    *,
    name: str,
    env: dict[str, str] | None = None,
    queue: str | None = None,
    broker: str = BROKER_URL,
):
    """A real worker (solo pool) on the test database, consuming a queue of its
    own (or `queue`, to take over from a worker that died), from `broker`."""
    queue = queue or f"{name}-test-{uuid.uuid4().hex}"
    log = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
    command = [
        str(Path(sys.executable).with_name("celery")),
        *("-A", "saas", "worker", "--pool", "solo", "--concurrency", "1", "-Q", queue),
        *("-n", f"{queue}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"),
    ]
    with log.open("w") as log_file:
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env={**worker_environment(), "CELERY_BROKER_URL": broker, **(env or {})},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(process, log)
        yield Worker(queue, log, process, broker)
    finally:
        stop(process)
        delete_queue(queue, broker)


@pytest.fixture
def via_broker():
    """Send tasks to RabbitMQ instead of running them in this process."""
    saved = app.conf.task_always_eager, app.conf.broker_url
    app.conf.task_always_eager, app.conf.broker_url = False, BROKER_URL
    yield
    app.conf.task_always_eager, app.conf.broker_url = saved


def send(task, worker: Worker, *args) -> str:
    """Queue the task for the worker; returns its id."""
    with app.connection_for_write(worker.broker) as conn:
        return task.apply_async(args=args, queue=worker.queue, connection=conn).id


def wait_for(condition, what: str):
    deadline = time.monotonic() + TASK_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"the worker did not {what} within {TASK_SECONDS} s")
