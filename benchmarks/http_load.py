"""Benchmark: /api/v1/echo under gunicorn with enforcement on and off.

    .venv/bin/python benchmarks/http_load.py        (or: make bench-http)
    .venv/bin/python benchmarks/http_load.py --instructions   (or: make bench-instructions)

Starts gunicorn three times on 127.0.0.1 (2 gthread workers x 4 threads, each
taking 8 of the 16 connections, DEBUG off, PostgreSQL and Redis): as deployed
("enforced"); with BENCH_ENFORCEMENT=off ("unenforced", benchmarks/settings.py: no throttle classes,
not limited, not metered); and unenforced plus one bare Redis round trip per
request ("round trip only", benchmarks/round_trip_wsgi.py), the ceiling of any
design that asks Redis once per request. A customer with a quota and burst no
run reaches gets a fresh key; each server is warmed up, then `wrk` (or, without
it, a Python load generator) drives GET /api/v1/echo?msg=hi from a separate
process with a fixed number of keep-alive connections. The servers take turns
in slices (ABCCBA...), so that the noise of a shared machine falls on all
alike; the figures are over all slices of a server, latency percentiles from
the merged histogram, ratios the median over rounds of adjacent slices.
It also prints the CPU the gunicorn workers and Redis used per request served
(from /proc, when Redis runs on this machine): where enforcement's cost goes.

Then, with no load and no server, the thread CPU of one request through the
WSGI application in a single process, for four cases: unenforced; unenforced
plus the bare round trip; enforced with the limiter's answer replayed from
memory (the throttle, headers, billing guess and cost sample all run, only the
Redis round trip is left out: a diagnostic, not a shipped mode); and enforced
as deployed. The differences split enforcement's cost into the round trip and
the Python around the check. With --instructions, only those four cases, each
under valgrind, counted in instructions per request: user-space work only (the
kernel's share of a round trip is not counted), the same run after run.

PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/saas_bench,
created and migrated when missing). Redis: BENCH_REDIS_URL (default
redis://127.0.0.1:6379/10), FLUSHED at the start. Ambient DATABASE_URL and
REDIS_URL are deliberately ignored.
"""

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/saas_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
HOST = "127.0.0.1"
PATH = "/api/v1/echo?msg=hi"
WORKERS = int(os.environ.get("BENCH_WORKERS", 2))
THREADS = int(os.environ.get("BENCH_THREADS", 4))
CONNECTIONS = 16
SLICES = 8  # per server
SLICE_SECONDS = 2.0  # so 16 s of load per server
WARMUP_SECONDS = 2.0
EMAIL = "bench@example.com"
TIME_LIMIT_SECONDS = 300
# name: (BENCH_ENFORCEMENT, WSGI application)
MODES = {
    "enforced": ("on", "saas.wsgi:application"),
    "unenforced": ("off", "saas.wsgi:application"),
    "round trip only": ("off", "benchmarks.round_trip_wsgi:application"),
}

# Dumps the whole latency histogram (us -> count), so slices merge exactly.
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SUMMARY %d %d %d\\n", summary.duration, summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout))
  for i = 1, #latency do
    local value, count = latency(i)
    io.write(string.format("H %d %d\\n", value, count))
  end
end
"""


def log(message):
    print(f"  {message}", file=sys.stderr, flush=True)


# --- setup ------------------------------------------------------------------------------------


def server_env(secret_key, enforcement="on"):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        DEBUG="false",
        SECRET_KEY=secret_key,
        API_KEY_PEPPER=f"{secret_key}-pepper",  # the run's own, as the secret key
        # Deployed settings, but plain HTTP on loopback: no TLS in front to redirect to.
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS=HOST,
        BENCH_ENFORCEMENT=enforcement,
        LOG_LEVEL="WARNING",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def manage(env, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def ensure_database():
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def flush_redis():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    if client.connection_pool.connection_kwargs.get("db", 0) == 0:
        sys.exit("refusing to flush Redis database 0: set BENCH_REDIS_URL to a scratch database")
    client.flushdb()
    client.close()


def prepare(env):
    """Migrated database, flushed Redis, and a fresh key of an unlimited customer."""
    ensure_database()
    flush_redis()
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "sync_tiers")
    key = manage(env, "create_api_key", "--email", EMAIL, "--tier", "enterprise", "--name", "benchmark")
    key = key.strip().splitlines()[-1]
    manage(
        env,
        "shell",
        "-c",
        "from plans.models import Customer; "
        f"assert Customer.objects.filter(user__email={EMAIL!r})"
        ".update(quota_override=10**12, burst_override=10**6) == 1",
    )
    return key


# --- gunicorn ---------------------------------------------------------------------------------


def free_port():
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, mode, env, log_dir, application):
        self.mode, self.port = mode, free_port()
        self.log_path = Path(log_dir) / f"gunicorn-{mode}.log"
        self.log_file = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                application,
                f"--bind={HOST}:{self.port}",
                f"--workers={WORKERS}",
                "--worker-class=gthread",
                f"--threads={THREADS}",
                # Each worker takes its share of the keep-alive connections and
                # no more. Left to race for them, one worker sometimes took all
                # 16 (seen here: half the machine idle, throughput halved), so a
                # slice measured luck in accept() rather than the server.
                f"--worker-connections={-(-CONNECTIONS // WORKERS)}",
                "--graceful-timeout=5",
                "--log-level=warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )

    def get(self, path, key=None):
        connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
            response = connection.getresponse()
            response.read()
            return response.status, response.headers
        finally:
            connection.close()

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit(f"gunicorn ({self.mode}) did not become ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()  # graceful: the arbiter stops its workers
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything left in its group
        self.process.wait(timeout=5)
        self.log_file.close()


# --- CPU accounting ---------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid):
    """/proc/<pid>/stat after the command name (field 3, the state, first); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def cpu_seconds(pids):
    """User plus system CPU the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def children_of(parent):
    if not Path("/proc").is_dir():
        return []
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (fields := _stat_fields(entry.name)) and int(fields[1]) == parent
    ]


def redis_pid():
    """Redis's process id when it runs on this machine, else None."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        pid = client.info("server").get("process_id")
    finally:
        client.close()
    return pid if pid and _stat_fields(pid) else None


# --- load -------------------------------------------------------------------------------------


def drive_wrk(port, key, seconds, script):
    command = [
        "wrk",
        "-t2",
        f"-c{CONNECTIONS}",
        f"-d{seconds:g}s",
        "--timeout=5s",
        "-s",
        script,
        "-H",
        f"Authorization: Bearer {key}",
        f"http://{HOST}:{port}{PATH}",
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
    histogram, summary = {}, None
    for line in output.splitlines():
        fields = line.split()
        if fields and fields[0] == "H":
            histogram[int(fields[1])] = histogram.get(int(fields[1]), 0) + int(fields[2])
        elif fields and fields[0] == "SUMMARY":
            summary = fields
    if summary is None:
        sys.exit(f"wrk printed no summary:\n{output}")
    return {
        "seconds": int(summary[1]) / 1e6,
        "requests": int(summary[2]),
        "errors": int(summary[3]),
        "histogram": histogram,
    }


def drive_python(port, key, seconds):
    """The fallback: this script in --load mode, a separate process."""
    command = [sys.executable, __file__, "--load", str(port), key, str(seconds)]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if output.returncode:
        sys.exit(f"load generator failed:\n{output.stderr}")
    result = json.loads(output.stdout)
    result["histogram"] = {int(k): v for k, v in result["histogram"].items()}
    return result


def load_main(port, key, seconds):
    """--load mode: CONNECTIONS keep-alive connections, one thread each; prints JSON."""
    histogram, totals, lock = {}, {"requests": 0, "errors": 0}, threading.Lock()
    deadline = time.perf_counter() + seconds

    def connection_loop():
        local, requests, errors = {}, 0, 0
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        headers = {"Authorization": f"Bearer {key}"}
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection.request("GET", PATH, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=5)
                ok = False
            micros = int((time.perf_counter() - started) * 1e6)
            local[micros] = local.get(micros, 0) + 1
            requests += 1
            errors += not ok
        with lock:
            for micros, count in local.items():
                histogram[micros] = histogram.get(micros, 0) + count
            totals["requests"] += requests
            totals["errors"] += errors

    started = time.perf_counter()
    threads = [threading.Thread(target=connection_loop) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"seconds": time.perf_counter() - started, **totals, "histogram": histogram}))


def rate(run):
    return run["requests"] / run["seconds"]


def percentile(histogram, fraction):
    total, seen = sum(histogram.values()), 0
    for micros in sorted(histogram):
        seen += histogram[micros]
        if seen >= fraction * total:
            return micros
    return 0


# --- CPU per request in one process -------------------------------------------------------------

CPU_ROUNDS, CPU_REQUESTS, CPU_WARMUP = 7, 3000, 2000
CPU_CASES = (  # label, BENCH_ENFORCEMENT, how the request is served
    ("unenforced", "off", "plain"),
    ("unenforced + one bare round trip (PING)", "off", "round-trip"),
    ("enforced, limiter answer replayed from memory", "on", "replay"),
    ("enforced", "on", "plain"),
)


def request_cpu(secret_key, key):
    """Each case in a fresh process: median thread CPU per request, in us."""
    figures = []
    for label, enabled, serving in CPU_CASES:
        command = [sys.executable, __file__, "--request-cpu", key, serving]
        env = server_env(secret_key, enabled)
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        if result.returncode:
            sys.exit(f"request CPU ({label}) failed:\n{result.stderr[-3000:]}")
        figures.append((label, statistics.median(json.loads(result.stdout))))
    return figures


def request_cpu_main(key, serving, counting=False):
    """--request-cpu mode: prints a JSON list, thread CPU us per request per round.

    With `counting` (--request-instructions, run under valgrind): serves
    INSTRUCTION_REQUESTS requests inside functools.reduce, the one stretch
    valgrind counts (--toggle-collect=functools_reduce), and prints nothing.
    """
    import io

    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    if serving == "round-trip":
        from benchmarks.round_trip_wsgi import application
    elif serving == "replay":
        import metering.throttling
        from metering.limiter import get_limiter

        class ReplayingLimiter:
            """Asks Redis until it admits, then answers every check with that decision."""

            def __init__(self, limiter):
                self.limiter, self.decision = limiter, None

            def check(self, limits, **options):
                if self.decision is None:
                    decision = self.limiter.check(limits, **options)
                    if not decision.admitted:
                        # A fresh period's first answer asks for a seed: the
                        # throttle asks again with one, and that is the one to keep.
                        return decision
                    self.decision = decision
                return self.decision

        replaying = ReplayingLimiter(get_limiter())
        metering.throttling.get_limiter = lambda: replaying

    path, query = PATH.split("?")
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def one_request():
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": HOST,
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": HOST,
            "HTTP_AUTHORIZATION": f"Bearer {key}",
            "REMOTE_ADDR": HOST,
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
        }
        body = application(environ, start_response)
        b"".join(body)
        body.close()

    if counting:
        import functools

        import apikeys.context
        import metering.cost

        # Under valgrind a request takes ~50x longer, so the wall-clock paths
        # (key context refresh, last_used_at, the cost samples' write) would
        # run ~50x as often per request as they do for real: stop their clocks.
        apikeys.context.key_contexts._clock = lambda: 1e9
        metering.cost.cost_aggregator._clock = lambda: 0.0
        metering.cost.cost_aggregator._flushed_at = 0.0
        for _ in range(INSTRUCTION_WARMUP):
            one_request()
        functools.reduce(lambda _, __: one_request(), range(INSTRUCTION_REQUESTS), None)
        if not all(status.startswith("200") for status in statuses):
            sys.exit("some requests were not 200")
        return
    for _ in range(CPU_WARMUP):
        one_request()
    if not statuses[-1].startswith("200"):
        sys.exit(f"GET {PATH}: {statuses[-1]}")
    rounds = []
    for _ in range(CPU_ROUNDS):
        started = time.thread_time()
        for _ in range(CPU_REQUESTS):
            one_request()
        rounds.append((time.thread_time() - started) / CPU_REQUESTS * 1e6)
    if not all(status.startswith("200") for status in statuses):
        sys.exit("some requests were not 200")
    print(json.dumps(rounds))


INSTRUCTION_WARMUP, INSTRUCTION_REQUESTS = 300, 400


def request_instructions(secret_key, key):
    """Each case under valgrind, two at a time: instructions per request (user space)."""
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed")
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as scratch:
        for pair in (CPU_CASES[:2], CPU_CASES[2:]):
            running = []
            for label, enabled, serving in pair:
                command = [
                    "valgrind",
                    "--tool=callgrind",
                    "--collect-atstart=no",
                    "--toggle-collect=functools_reduce",
                    f"--callgrind-out-file={scratch}/{serving}-{enabled}.out",
                    sys.executable,
                    __file__,
                    "--request-instructions",
                    key,
                    serving,
                ]
                env = {**server_env(secret_key, enabled), "PYTHONHASHSEED": "0"}
                running.append(
                    (label, subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True))
                )
            for label, process in running:
                _, stderr = process.communicate(timeout=600)
                collected = [line.split()[-1] for line in stderr.splitlines() if "Collected :" in line]
                if process.returncode or not collected:
                    sys.exit(f"request instructions ({label}) failed:\n{stderr[-3000:]}")
                figures[label] = int(collected[-1]) / INSTRUCTION_REQUESTS
    return [(label, figures[label]) for label, _, _ in CPU_CASES]


def print_cases(title, figures, row_format):
    """One line per in-process case: its figure, then its difference from the first case's."""
    print(title)
    baseline = figures[0][1]
    for label, figure in figures:
        print(f"  {label:<48}" + row_format.format(figure, figure - baseline))


def instructions_main():
    """--instructions: the in-process cases counted in instructions, which, unlike
    CPU time, come out the same run after run (valgrind counts, not times)."""
    started = time.monotonic()
    secret_key = secrets.token_urlsafe(50)
    key = prepare(server_env(secret_key))
    figures = request_instructions(secret_key, key)
    print_cases(
        f"instructions per request in one process (user space, valgrind callgrind, "
        f"{INSTRUCTION_REQUESTS} requests after {INSTRUCTION_WARMUP} of warm-up):",
        figures,
        "{:>12,.0f}  {:+10,.0f}",
    )
    print(f"({time.monotonic() - started:.0f} s)")


# --- the run ----------------------------------------------------------------------------------


def main():
    started = time.monotonic()
    servers = []

    def out_of_time(*_):
        raise SystemExit(f"benchmark exceeded its time limit of {TIME_LIMIT_SECONDS} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.signal(signal.SIGTERM, out_of_time)
    signal.alarm(TIME_LIMIT_SECONDS)
    # BENCH_LOADGEN=python forces the Python load generator even where wrk is installed.
    wrk = shutil.which("wrk") if os.environ.get("BENCH_LOADGEN", "wrk") == "wrk" else None
    secret_key = secrets.token_urlsafe(50)
    key = prepare(server_env(secret_key))
    log(f"database migrated, key created ({time.monotonic() - started:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
        script = Path(scratch) / "histogram.lua"
        script.write_text(WRK_SCRIPT)

        def drive(server, seconds):
            if wrk:
                return drive_wrk(server.port, key, seconds, str(script))
            return drive_python(server.port, key, seconds)

        try:
            for mode, (enabled, application) in MODES.items():
                servers.append(Server(mode, server_env(secret_key, enabled), scratch, application))
            for server in servers:
                server.wait_ready()
                status, headers = server.get(PATH, key)
                limited = "RateLimit-Limit" in headers
                if status != 200 or limited != (server.mode == "enforced"):
                    sys.exit(f"{server.mode}: status {status}, RateLimit headers {limited}: not as expected")
                drive(server, WARMUP_SECONDS)
            log(f"servers up and warmed ({time.monotonic() - started:.0f} s)")
            runs = {server.mode: [] for server in servers}
            # Per round of adjacent slices, one of each server: each one's
            # throughput over the unenforced server's.
            round_ratios = {server.mode: [] for server in servers}
            order = servers + servers[::-1]  # ABCCBA, repeated: each half is one round
            redis_process = redis_pid()
            for number in range(SLICES * len(servers)):
                server = order[number % len(order)]
                workers = children_of(server.process.pid)
                before = cpu_seconds(workers), cpu_seconds([redis_process] if redis_process else [])
                run = drive(server, SLICE_SECONDS)
                after = cpu_seconds(workers), cpu_seconds([redis_process] if redis_process else [])
                run["worker_cpu"], run["redis_cpu"] = after[0] - before[0], after[1] - before[1]
                runs[server.mode].append(run)
                if number % len(servers) == len(servers) - 1:  # a round is complete
                    baseline = rate(runs["unenforced"][-1])
                    for mode, ratios in round_ratios.items():
                        ratios.append(rate(runs[mode][-1]) / baseline)
            log(f"load done ({time.monotonic() - started:.0f} s)")
        finally:
            for server in servers:
                server.stop()
    cpu_figures = request_cpu(secret_key, key)
    log(f"request CPU measured ({time.monotonic() - started:.0f} s)")

    figures = {}
    for mode, slices in runs.items():
        histogram = {}
        for run in slices:
            for micros, count in run["histogram"].items():
                histogram[micros] = histogram.get(micros, 0) + count
        requests = sum(r["requests"] for r in slices)
        figures[mode] = {
            # CPU of the gunicorn workers and of Redis over the slices, per request served
            "worker_us": sum(r["worker_cpu"] for r in slices) / requests * 1e6 if requests else 0,
            "redis_us": sum(r["redis_cpu"] for r in slices) / requests * 1e6 if requests else 0,
            "rate": sum(r["requests"] for r in slices) / sum(r["seconds"] for r in slices),
            "requests": sum(r["requests"] for r in slices),
            "errors": sum(r["errors"] for r in slices),
            "p50": percentile(histogram, 0.50) / 1000,
            "p99": percentile(histogram, 0.99) / 1000,
        }
    print(
        f"http benchmark: GET {PATH}, gunicorn {WORKERS} workers x {THREADS} gthreads, PostgreSQL + Redis, "
        f"DEBUG off; {'wrk' if wrk else 'Python load generator'} with {CONNECTIONS} connections, "
        f"{SLICES} x {SLICE_SECONDS:g} s per server in alternating slices; {os.cpu_count()} CPUs"
    )
    print()
    rows = [
        ("requests/s", lambda f: f"{f['rate']:,.0f}"),
        ("p50 latency, ms", lambda f: f"{f['p50']:.2f}"),
        ("p99 latency, ms", lambda f: f"{f['p99']:.2f}"),
        ("requests", lambda f: f"{f['requests']:,}"),
        ("errors or non-2xx", lambda f: f"{f['errors']:,}"),
        ("worker CPU/req, us", lambda f: f"{f['worker_us']:,.0f}"),
        ("Redis CPU/req, us", lambda f: f"{f['redis_us']:,.0f}"),
    ]
    modes = list(MODES)
    print(f"{'':<20}" + "".join(f"{mode:>17}" for mode in modes))
    print("-" * (20 + 17 * len(modes)))
    for label, cell in rows:
        print(f"{label:<20}" + "".join(f"{cell(figures[mode]):>17}" for mode in modes))
    # The host's noise comes in bursts that can fall on one server's slices more
    # than another's; the median of the rounds' ratios is robust to that.
    ratio = {mode: statistics.median(ratios) for mode, ratios in round_ratios.items()}
    print()
    for mode in ("enforced", "round trip only"):
        ratios = round_ratios[mode]
        print(
            f"{mode} / unenforced throughput: {ratio[mode]:.0%} (median of {len(ratios)} rounds of adjacent "
            f"slices, range {min(ratios):.0%} to {max(ratios):.0%}; "
            f"pooled {figures[mode]['rate'] / figures['unenforced']['rate']:.0%})"
        )
    enforced = ratio["enforced"]
    print(
        f"  [{'met' if enforced >= 0.85 else 'MISSED'}] target (enforcement): enforced >= 85% of unenforced"
    )
    print(
        f"  [{'met' if enforced >= 0.80 else 'MISSED'}] target (with metering and cost sampling, both on in "
        "'enforced'): >= 80% of unenforced"
    )
    print(
        "  'round trip only' is the unenforced server plus one bare Redis round trip (PING) per request: "
        "the most any design asking Redis once per request could reach here"
    )
    if any(figures[mode]["errors"] for mode in modes):
        print("  WARNING: some requests failed or were not 2xx")
    print()
    print_cases(
        f"thread CPU of one request in one process, no load (WSGI application called directly; "
        f"median of {CPU_ROUNDS} rounds of {CPU_REQUESTS:,}):",
        cpu_figures,
        "{:>7.0f} us  {:+6.0f} us",
    )
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--load":
        load_main(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--request-cpu":
        request_cpu_main(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "--request-instructions":
        request_cpu_main(sys.argv[2], sys.argv[3], counting=True)
    elif sys.argv[1:] == ["--instructions"]:
        instructions_main()
    else:
        main()
