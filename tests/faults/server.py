"""gunicorn serving the app in a child process, as in production (DEBUG off), for fault tests.

Point its DATABASE_URL or REDIS_URL at a TCPProxy (tests/faults/tcp_proxy.py)
and switch the proxy while requests run. HTTP goes to 127.0.0.1 only.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from tests.utils import stop

STARTUP_SECONDS = 30


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(**changes: str) -> dict[str, str]:
    """This process's environment for the test services, DEBUG off, plus `changes`."""
    db = settings.DATABASES["default"]
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RATE_LIMIT_", "KEY_CONTEXT_", "BILLING_", "DATABASE_"))
    }
    return {
        **inherited,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "API_KEY_PEPPER": settings.API_KEY_PEPPER,
        "ALLOWED_HOSTS": "127.0.0.1",
        **changes,
    }


def fetch(url: str, *, headers: dict[str, str] | None = None, timeout: float = 30) -> Reply:
    """One GET; any status is a Reply, only a network failure or the timeout raises."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, dict(error.headers), error.read())


def wait_until_healthy(process: subprocess.Popen, base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if fetch(f"{base_url}/healthz", timeout=1).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn was not healthy within {STARTUP_SECONDS} s:\n{log.read_text()}")


@contextlib.contextmanager
def gunicorn(log: Path, *, workers: int = 1, threads: int = 4, **environment: str):
    """Yields the base URL of gunicorn serving saas.wsgi; `environment` is added to server_environment()."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("gunicorn")), "saas.wsgi"]
    command += ["-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{port}"]
    with log.open("w") as log_file:
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=server_environment(**environment),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(process, base_url, log)
        yield base_url
    finally:
        stop(process)
