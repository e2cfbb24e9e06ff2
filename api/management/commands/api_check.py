"""`make api-check`: schemathesis against this app, over HTTP, on 127.0.0.1.

1. A key made for the run, on a private tier whose limits the run cannot
   reach (a 429 would be the limit doing its job, not a fault to report).
2. gunicorn serving the app on 127.0.0.1 with the settings of the caller's
   environment (`make api-check` uses the embedded default, as `make run`).
3. `st run` on the served schema with every built-in check (schemathesis.toml
   has their settings), bounded in examples per operation and in time.
4. The server stopped and the key revoked, whatever happened.

No request leaves the machine: the schema names no server, so schemathesis
sends everything to the address it read the schema from.
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError

from apikeys.services import api_key_create, api_key_revoke
from plans.models import QuotaPeriod, Tier
from plans.services import customer_get_or_create

RUN_TIER = "api-check"
RUN_EMAIL = "api-check@localhost"
SERVER_START_SECONDS = 30


class Command(BaseCommand):
    help = "Run schemathesis with every check against this app served on 127.0.0.1."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--max-examples", type=int, default=50, help="Per operation and phase.")
        parser.add_argument("--max-time", type=int, default=120, help="Seconds for the whole run.")

    def handle(self, *args, port, max_examples, max_time, **options):
        st = shutil.which("st", path=os.path.dirname(sys.executable))
        if st is None:
            raise CommandError("schemathesis is not installed: run 'make install-dev'.")
        created = api_key_create(customer=_run_customer(), name=f"api-check {int(time.time())}")
        try:
            with _server(port):
                url = f"http://127.0.0.1:{port}"
                command = [
                    st, "run", f"{url}/api/schema/?format=json",
                    "--checks", "all",
                    "--header", f"Authorization: Bearer {created.raw_key}",
                    "--max-examples", str(max_examples),
                    "--max-time", str(max_time),
                    "--request-timeout", "10",
                    "--workers", "1",
                ]  # fmt: skip
                # The subprocess's own bound: --max-time leaves the last request to finish.
                result = subprocess.run(command, timeout=max_time + 60, check=False)
        finally:
            api_key_revoke(api_key=created.api_key)
        if result.returncode:
            raise CommandError(f"schemathesis found failures (exit {result.returncode}).")
        self.stdout.write(self.style.SUCCESS("api-check: every check passed."))


def _run_customer():
    Tier.objects.get_or_create(
        slug=RUN_TIER,
        defaults={
            "name": "API check",
            "price": 0,
            "currency": "usd",
            "quota": 10**9,
            "quota_period": QuotaPeriod.MONTH,
            "burst": 10**6,
            "is_public": False,
        },
    )
    return customer_get_or_create(email=RUN_EMAIL, tier_slug=RUN_TIER)[0]


@contextmanager
def _server(port: int):
    # Errors only: every 4xx the run provokes would be a warning line.
    environment = {**os.environ, "LOG_LEVEL": os.environ.get("API_CHECK_LOG_LEVEL", "ERROR")}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "saas.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=environment,
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CommandError(f"gunicorn exited with {server.returncode} before it served.")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers: a 503 health check is still a server up
        except OSError:
            time.sleep(0.2)
    raise CommandError(f"gunicorn did not answer on {url} within {SERVER_START_SECONDS} s.")
