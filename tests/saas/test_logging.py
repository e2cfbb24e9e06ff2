"""Under `make run` (DEBUG on, runserver) every log line is printed once."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def make_run_server(tmp_path):
    """runserver as `make run` starts it: DEBUG on, the embedded default (SQLite, no Redis)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "REDIS_", "CELERY_", "DJANGO_SETTINGS_MODULE", "LOG_LEVEL"))
    }
    env.update(DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", PYTHONUNBUFFERED="1")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    yield server, url
    if server.poll() is None:
        server.terminate()
        server.wait(timeout=10)


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_request_logs_its_warning_and_its_access_line_once(make_run_server):
    server, url = make_run_server
    assert get(url + "/no-such-page/") == 404
    server.terminate()
    output, _ = server.communicate(timeout=10)

    assert output.count("Not Found: /no-such-page/") == 1, output
    assert output.count('"GET /no-such-page/ HTTP/1.1" 404') == 1, output
