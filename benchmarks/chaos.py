"""make chaos: each dependency fault under load, one table.

Starts its own redis-server (AOF, fsync always, on a free port), a TCP proxy
in front of PostgreSQL (tests/faults/tcp_proxy.py) and gunicorn (2 workers x
4 threads, DEBUG off) on a scratch database, then for each fault: load for a
few seconds, the fault for FAULT_SECONDS, the fault lifted, load until the
API serves again. Load: client threads looping over a mix of an API call
with a valid key (billable), the usage API, the pricing page and /healthz.

Per fault it prints the requests sent while the fault lasted, their status
codes, p50 and p99 latency, the 500s, how long until the API served again,
the server's log lines (and tracebacks) during the fault, and billed units
lost or doubled: the API calls answered 2xx from the fault's start to its
recovery against the units the ledger and Redis hold for them (after a
flush). Then bad traffic: unknown keys with a valid checksum, and webhooks
signed with the endpoint's secret but of a shape Stripe never sends.

Traffic goes to 127.0.0.1 only, bounded in time. Environment:
CHAOS_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/saas_chaos,
created and migrated when missing), CHAOS_FAULT_SECONDS (6), CHAOS_THREADS (8).
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the project's packages (tests.faults, apikeys.keys)

from apikeys.keys import generate_key  # noqa: E402
from tests.faults.tcp_proxy import TCPProxy  # noqa: E402

HOST = "127.0.0.1"
DATABASE_URL = os.environ.get("CHAOS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/saas_chaos")
FAULT_SECONDS = float(os.environ.get("CHAOS_FAULT_SECONDS", 6))
THREADS = int(os.environ.get("CHAOS_THREADS", 8))
LOG_DIR = os.environ.get("CHAOS_LOG_DIR")  # when set: each fault's server log is kept there
ONLY = os.environ.get("CHAOS_ONLY", "")  # run only the faults whose name contains this
STEADY_SECONDS = 2.0
RECOVERY_LIMIT_SECONDS = 30.0
CLIENT_TIMEOUT_SECONDS = 15.0
WEBHOOK_SECRET = "whsec_chaos"
EMAIL = "chaos@example.com"
ECHO = "/api/v1/echo?msg=chaos"
WEBHOOK = "/billing/stripe/webhook/"
MIX = [ECHO] * 7 + ["/api/v1/usage", "/pricing/", "/healthz"]


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    return port if port < 55535 else free_port()  # a cluster bus port would be port + 10000


# --- the services ------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server whose data survives a kill (AOF, fsync always)."""

    def __init__(self, directory: Path):
        self.directory, self.port, self.process = directory, free_port(), None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", ""]
            + ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"


def environment(database_url: str, redis_url: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "REDIS_", "CELERY_", "RATE_LIMIT_", "STRIPE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="saas.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DEBUG="false",
        SECRET_KEY="chaos-" + "s" * 50,
        API_KEY_PEPPER="chaos-" + "p" * 50,
        SECURE_SSL_REDIRECT="false",  # plain HTTP on loopback: no TLS in front
        ALLOWED_HOSTS=HOST,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def ensure_database() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def prepare(env: dict[str, str]) -> str:
    """Migrated database, default tiers, a fresh key of a customer no limit refuses."""
    ensure_database()
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "sync_tiers")
    raw_key = manage(env, "create_api_key", "--email", EMAIL, "--tier", "enterprise", "--name", "chaos")
    manage(
        env,
        "shell",
        "-c",
        "from plans.models import Customer; "
        f"Customer.objects.filter(user__email={EMAIL!r}).update(quota_override=10**12, burst_override=10**6)",
    )
    return raw_key.strip().splitlines()[-1]


def billed_units(env: dict[str, str]) -> int:
    """Flush Redis to the ledger, then the customer's units in both."""
    manage(env, "flush_usage")
    code = (
        "from django.db.models import Sum; from metering.models import UsageRecord; "
        "from metering.selectors import pending_units; from plans.models import Customer; "
        f"customer = Customer.objects.get(user__email={EMAIL!r}); "
        "ledger = UsageRecord.objects.filter(customer=customer).aggregate(t=Sum('count'))['t'] or 0; "
        "print(ledger + sum(pending_units(customer_id=customer.pk).values()))"
    )
    return int(manage(env, "shell", "-c", code).strip().splitlines()[-1])


class Gunicorn:
    def __init__(self, env: dict[str, str], log_path: Path):
        self.port, self.log_path = free_port(), log_path
        command = [str(Path(sys.executable).with_name("gunicorn")), "saas.wsgi"]
        command += ["-w", "2", "--threads", "4", "-b", f"{HOST}:{self.port}", "--timeout", "60"]
        self.log_file = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited:\n{log_path.read_text()}")
            try:
                if request(self.port, "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        sys.exit(f"gunicorn was not healthy in 60 s:\n{log_path.read_text()}")

    def log_size(self) -> int:
        self.log_file.flush()
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open() as log_file:
            log_file.seek(offset)
            return log_file.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log_file.close()


# --- load ---------------------------------------------------------------------------------------


def request(
    port: int, path: str, headers: dict | None = None, method: str = "GET", body: bytes | None = None
):
    """(status, seconds); status 0 when the connection failed or timed out."""
    connection = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT_SECONDS)
    started = time.monotonic()
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    except OSError:
        return 0, time.monotonic() - started
    finally:
        connection.close()


@dataclass
class Sample:
    at: float
    path: str
    status: int
    seconds: float


@dataclass
class Load:
    """Client threads looping over MIX; paused (every request finished) while
    billing is read, so the units compared are exactly those of the window."""

    port: int
    key: str
    samples: list[Sample] = field(default_factory=list)
    running: bool = True
    go: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        return threads

    def pause(self) -> None:
        with self.lock:
            self.go.clear()
        while self.in_flight:
            time.sleep(0.02)

    def resume(self) -> None:
        self.go.set()

    def _client(self, number: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        turn = number
        while self.running:
            with self.lock:
                if not self.go.is_set():
                    path = None
                else:
                    self.in_flight += 1
                    path = MIX[turn % len(MIX)]
            if path is None:
                self.go.wait(0.1)
                continue
            turn += 1
            try:
                status, seconds = request(self.port, path, headers if path.startswith("/api/") else None)
                self.samples.append(Sample(time.monotonic(), path, status, seconds))
            finally:
                with self.lock:
                    self.in_flight -= 1

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in list(self.samples) if start <= s.at - s.seconds and s.at - s.seconds < end]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Row:
    fault: str
    requests: int
    statuses: Counter
    p50: float
    p99: float
    recovered_after: float | None
    log_lines: int
    tracebacks: int
    billed_delta: int | None  # billed minus served 2xx API calls: <0 lost, >0 doubled

    def cells(self) -> list[str]:
        statuses = " ".join(f"{code}:{count}" for code, count in sorted(self.statuses.items()))
        recovered = "-" if self.recovered_after is None else f"{self.recovered_after:.1f} s"
        billed = (
            "-"
            if self.billed_delta is None
            else (
                "0"
                if self.billed_delta == 0
                else f"{abs(self.billed_delta)} {'lost' if self.billed_delta < 0 else 'doubled'}"
            )
        )
        return [
            self.fault,
            str(self.requests),
            statuses,
            f"{self.p50 * 1000:.0f} ms",
            f"{self.p99 * 1000:.0f} ms",
            str(self.statuses.get(500, 0)),
            recovered,
            f"{self.log_lines} ({self.tracebacks})",
            billed,
        ]


HEADER = [
    "fault",
    "requests",
    "status codes",
    "p50",
    "p99",
    "500s",
    "serving again",
    "log lines (tracebacks)",
    "billed lost/doubled",
]


def run_fault(name, apply, lift, *, load: Load, server: Gunicorn, env: dict[str, str]) -> Row:
    log(f"{name}: steady load")
    before = billed_units(env)
    window_start = time.monotonic()
    load.resume()
    time.sleep(STEADY_SECONDS)
    log_offset = server.log_size()
    started = time.monotonic()
    apply()
    time.sleep(FAULT_SECONDS)
    lifted = time.monotonic()
    lift()
    log(f"{name}: lifted after {lifted - started:.1f} s")
    recovered_at = None
    deadline = lifted + RECOVERY_LIMIT_SECONDS
    while time.monotonic() < deadline and recovered_at is None:
        time.sleep(0.1)
        served = [s for s in load.between(lifted, time.monotonic()) if s.path == ECHO and s.status == 200]
        recovered_at = min((s.at - s.seconds for s in served), default=None)
    time.sleep(STEADY_SECONDS)
    load.pause()
    during = load.between(started, lifted)
    window = load.between(window_start, time.monotonic())
    served = sum(1 for s in window if s.path == ECHO and 200 <= s.status < 300)
    load_log = server.log_since(log_offset)
    if LOG_DIR:
        Path(LOG_DIR, re.sub(r"\W+", "-", name).strip("-").lower() + ".log").write_text(load_log)
    text_lines = [line for line in load_log.splitlines() if line.strip()]
    billed = billed_units(env) - before
    return Row(
        fault=name,
        requests=len(during),
        statuses=Counter(s.status for s in during),
        p50=percentile([s.seconds for s in during], 0.5),
        p99=percentile([s.seconds for s in during], 0.99),
        recovered_after=None if recovered_at is None else max(0.0, recovered_at - lifted),
        log_lines=len(text_lines),
        tracebacks=load_log.count("Traceback"),
        billed_delta=None if served == 0 and billed == 0 else billed - served,
    )


# --- bad traffic ---------------------------------------------------------------------------------


def signed(body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


ODD_WEBHOOKS = [
    b"[]",
    b'"event"',
    json.dumps(
        {"id": "evt_1", "object": "event", "type": "customer.created", "created": "yesterday"}
    ).encode(),
    json.dumps(
        {"id": "evt_" + "x" * 300, "object": "event", "type": "customer.created", "created": 1}
    ).encode(),
    json.dumps(
        {"id": "evt_nul\u0000", "object": "event", "type": "x", "created": 1, "data": {"object": {}}}
    ).encode(),
    b'{"id": "evt_2", "object": "event", "type": "invoice.paid", "created": 1, "data": {"object": []}}',
    b"not json at all",
]


def bad_traffic(port: int, key: str) -> list[Row]:
    rows = []
    prefix = re.match(r"^[a-z]+_[a-z]+_", key).group(0)
    for name, requests in (
        (
            "unknown keys, valid checksum",
            [("GET", ECHO, {"Authorization": f"Bearer {generate_key(prefix)}"}, None) for _ in range(2000)],
        ),
        ("odd signed webhooks", [("POST", WEBHOOK, signed(body), body) for body in ODD_WEBHOOKS * 10]),
    ):
        samples = [request(port, path, headers, method, body) for method, path, headers, body in requests]
        statuses = Counter(status for status, _ in samples)
        seconds = [s for _, s in samples]
        rows.append(
            Row(
                name,
                len(samples),
                statuses,
                percentile(seconds, 0.5),
                percentile(seconds, 0.99),
                None,
                0,
                0,
                None,
            )
        )
    return rows


def print_table(rows: list[Row]) -> None:
    table = [HEADER] + [row.cells() for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(HEADER))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def main() -> None:
    if not shutil.which("redis-server"):
        sys.exit("make chaos needs redis-server")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-") as directory:
        directory = Path(directory)
        redis_server = RedisServer(directory)
        redis_server.start()
        upstream = urlsplit(DATABASE_URL)
        proxy = TCPProxy(upstream=(upstream.hostname or HOST, upstream.port or 5432)).start()
        direct = environment(DATABASE_URL, redis_server.url)
        proxied_url = urlunsplit(
            upstream._replace(netloc=f"{upstream.username or 'postgres'}@{proxy.host}:{proxy.port}")
        )
        server = None
        try:
            key = prepare(direct)
            server = Gunicorn(environment(proxied_url, redis_server.url), directory / "gunicorn.log")
            setup = time.monotonic() - started
            log(f"ready in {setup:.0f} s; {THREADS} client threads, faults of {FAULT_SECONDS:.0f} s")
            load = Load(server.port, key)
            threads = load.run()
            faults = [
                ("Redis hung (SIGSTOP)", redis_server.pause, redis_server.resume),
                ("Redis down (killed, restarted)", redis_server.kill, redis_server.start),
                ("PostgreSQL stalled (proxy holds bytes)", proxy.stall, proxy.forward),
                ("PostgreSQL down (port refused)", proxy.refuse, proxy.forward),
            ]
            rows = [
                run_fault(name, apply, lift, load=load, server=server, env=direct)
                for name, apply, lift in faults
                if ONLY.lower() in name.lower()
            ]
            load.running = False
            for thread in threads:
                thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)
            rows += bad_traffic(server.port, key)
            print(
                "make chaos: gunicorn 2 workers x 4 threads, "
                f"{THREADS} client threads, each fault {FAULT_SECONDS:.0f} s"
            )
            print_table(rows)
            print(f"({time.monotonic() - started:.0f} s)")
        finally:
            if server is not None:
                server.stop()
            proxy.stop()
            redis_server.kill()


if __name__ == "__main__":
    main()
