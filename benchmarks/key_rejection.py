"""Benchmark: how fast the API turns bad keys away, beside how fast it serves a good one.

    .venv/bin/python benchmarks/key_rejection.py        (or: make bench-keys)

Starts gunicorn once on 127.0.0.1 as bench-http does (2 gthread workers x 4
threads, 16 connections, DEBUG off, enforcement on, PostgreSQL and Redis), with
TRUSTED_PROXY_COUNT=1 so that each request names its client address in
X-Forwarded-For, and drives GET /api/v1/echo with wrk, four kinds of request
taking turns in slices (ABCDDCBA...):

- valid key: one working key of a customer no limit stops (200);
- malformed key: keys of the right length and alphabet with a wrong checksum,
  refused before any lookup (401);
- unknown key: well-formed keys (valid checksum) that were never issued (401);
- refused address: unknown keys from one address past its failed-authentication
  limit (429).

Before the slices, 10,000 unknown keys are each sent once (their first sight:
the one time a key may be looked up), then once more (their second sight, each
on another connection, so about half by the other worker): PostgreSQL's count of key
lookups (scans of apikeys_apikey) is printed after each pass. The slices then
repeat 1,000 of them, after a warm-up long enough for each worker to have seen
each: the steady state of a flood of repeated keys. Malformed and unknown keys
come from 10,000 addresses each, so that at the default limit
(FAILED_AUTH_LIMIT failures per FAILED_AUTH_WINDOW_SECONDS) no address of
theirs is refused: every rejection is counted, as in production. Rejected keys
are remembered for REJECTED_KEY_CACHE_SECONDS=600 here, longer than the run,
so that no key is looked up a second time.

It prints the rate and latency of each kind, the gunicorn workers' and Redis's
CPU per request, and unknown-key rejections/s over malformed-key rejections/s
(the median over rounds of adjacent slices) against the 90% target. A run
takes about two and a half minutes.

PostgreSQL and Redis as bench-http: BENCH_DATABASE_URL (saas_bench), BENCH_REDIS_URL
(database 10, FLUSHED at the start).
"""

import http.client
import os
import random
import secrets
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apikeys.keys import CHECKSUM_LENGTH, generate_key  # noqa: E402 (after the path)
from benchmarks.http_load import (  # noqa: E402
    CONNECTIONS,
    DATABASE_URL,
    HOST,
    PATH,
    THREADS,
    WORKERS,
    Server,
    children_of,
    cpu_seconds,
    log,
    percentile,
    prepare,
    redis_pid,
    server_env,
)

POOL = 10_000  # unknown keys seen once, then twice; addresses per kind
SLICE_KEYS = 1_000  # keys each kind's slices repeat
UNKNOWN_WARMUP_SECONDS = 6.0  # each worker sees each of the slices' unknown keys (~4 times on average)
PREFIX = "tk_live_"
SLICES = 8  # per kind
SLICE_SECONDS = 2.0
WARMUP_SECONDS = 2.0
STATS_FLUSH_SECONDS = 0.5  # for ended backends to publish their counters
TIME_LIMIT_SECONDS = 300
TARGET = 0.90
KINDS = ("valid key", "malformed key", "unknown key", "refused address")
# The refused address gets 401 again for its first failures of each new window.
EXPECTED_STATUSES = {
    "valid key": {200},
    "malformed key": {401},
    "unknown key": {401},
    "refused address": {429, 401},
}
STATUS_LABELS = {"valid key": "200", "malformed key": "401", "unknown key": "401", "refused address": "429"}

# Cycles through the "key address" lines of the file named after "--", each
# thread from its own start; counts the statuses; dumps the latency histogram.
WRK_SCRIPT = """
local entries, position, threads = {}, 0, {}
statuses = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  path = args[2]
  for line in io.lines(args[1]) do
    local key, address = line:match("^(%S+) (%S+)$")
    entries[#entries + 1] = {key, address}
  end
  position = (id * 4999) % #entries
end

function request()
  position = position % #entries + 1
  local entry = entries[position]
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. entry[1], ["X-Forwarded-For"] = entry[2]})
end

function response(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("SUMMARY %d %d\\n", summary.duration, summary.requests))
  for i = 1, #latency do
    local value, count = latency(i)
    io.write(string.format("H %d %d\\n", value, count))
  end
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("S %d %d\\n", status, count))
    end
  end
end
"""


def address(pool: int, number: int) -> str:
    return f"10.{pool}.{number // 256}.{number % 256}"


def wrong_checksum(key: str) -> str:
    """The key with its checksum changed: well formed but for the checksum."""
    body, given = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    other = random.choice([c for c in string.ascii_letters + string.digits if c != given[-1]])
    return body + given[:-1] + other


def key_files(directory: Path, valid_key: str) -> dict[str, Path]:
    """'key address' lines: the sights' 10,000 unknown keys, and each kind's slices."""
    unknown = [generate_key(PREFIX) for _ in range(POOL)]
    malformed = [wrong_checksum(generate_key(PREFIX)) for _ in range(SLICE_KEYS)]
    lines = {
        "sights": [f"{key} {address(2, n)}" for n, key in enumerate(unknown)],
        "valid key": [f"{valid_key} {address(0, 1)}"],
        "malformed key": [f"{malformed[n % SLICE_KEYS]} {address(1, n)}" for n in range(POOL)],
        "unknown key": [f"{unknown[n % SLICE_KEYS]} {address(2, n)}" for n in range(POOL)],
        "refused address": [f"{key} {address(3, 1)}" for key in unknown[:SLICE_KEYS]],
    }
    files = {}
    for kind, kind_lines in lines.items():
        files[kind] = directory / f"{kind.replace(' ', '-')}.txt"
        files[kind].write_text("\n".join(kind_lines) + "\n")
    return files


def sight(port: int, path: Path, shift: int = 0) -> dict[int, int]:
    """Each line's key sent once, from its address, over CONNECTIONS keep-alive
    connections; `shift` moves each key to another connection than at shift 0."""
    entries = [line.split() for line in path.read_text().splitlines()]
    entries = entries[shift:] + entries[:shift]
    statuses, lock = {}, threading.Lock()

    def send(share):
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        seen = {}
        for key, client in share:
            headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": client}
            connection.request("GET", PATH, headers=headers)
            response = connection.getresponse()
            response.read()
            seen[response.status] = seen.get(response.status, 0) + 1
        connection.close()
        with lock:
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count

    threads = [threading.Thread(target=send, args=(entries[n::CONNECTIONS],)) for n in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def drive(port: int, path: Path, seconds: float, script: Path) -> dict:
    command = [
        "wrk",
        "-t2",
        f"-c{CONNECTIONS}",
        f"-d{seconds:g}s",
        "--timeout=5s",
        "-s",
        str(script),
        f"http://{HOST}:{port}{PATH}",
        "--",
        str(path),
        PATH,
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
    histogram, statuses, summary = {}, {}, None
    for line in output.splitlines():
        fields = line.split()
        if fields and fields[0] == "H":
            histogram[int(fields[1])] = histogram.get(int(fields[1]), 0) + int(fields[2])
        elif fields and fields[0] == "S":
            statuses[int(fields[1])] = statuses.get(int(fields[1]), 0) + int(fields[2])
        elif fields and fields[0] == "SUMMARY":
            summary = fields
    if summary is None:
        sys.exit(f"wrk printed no summary:\n{output}")
    return {
        "seconds": int(summary[1]) / 1e6,
        "requests": int(summary[2]),
        "histogram": histogram,
        "statuses": statuses,
    }


def key_lookups() -> int:
    """Scans of apikeys_apikey so far: one per key lookup (and one per last_used_at write
    of the valid key, at most every 2 s per process: apikeys.last_used).

    A backend publishes its counters when it ends, and otherwise up to 10 s late
    when idle; so the server's connections are ended first (Django's connection
    health check opens new ones at the next query).
    """
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        time.sleep(STATS_FLUSH_SECONDS)
        row = connection.execute(
            "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE relname = 'apikeys_apikey'"
        ).fetchone()
    return int(row[0])


def rate(run: dict) -> float:
    return run["requests"] / run["seconds"]


def load_average() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def main():
    started = time.monotonic()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run 'make bench-keys', which installs Debian's wrk")

    def out_of_time(*_):
        raise SystemExit(f"benchmark exceeded its time limit of {TIME_LIMIT_SECONDS} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.signal(signal.SIGTERM, out_of_time)
    signal.alarm(TIME_LIMIT_SECONDS)
    load_before = load_average()
    secret_key = secrets.token_urlsafe(50)
    env = {**server_env(secret_key), "TRUSTED_PROXY_COUNT": "1", "REJECTED_KEY_CACHE_SECONDS": "600"}
    valid_key = prepare(env)
    log(f"database migrated, key created ({time.monotonic() - started:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as scratch:
        scratch = Path(scratch)
        script = scratch / "keys.lua"
        script.write_text(WRK_SCRIPT)
        files = key_files(scratch, valid_key)
        server = Server("keys", env, scratch, "saas.wsgi:application")
        try:
            server.wait_ready()
            lookups = [key_lookups()]
            for shift in (0, 1):
                seen = sight(server.port, files["sights"], shift)
                if seen != {401: POOL}:
                    sys.exit(f"a sight of the unknown keys: statuses {seen}, expected 401 for all")
                lookups.append(key_lookups())
            log(f"unknown keys seen twice ({time.monotonic() - started:.0f} s)")
            for kind in KINDS:
                warmup = UNKNOWN_WARMUP_SECONDS if kind == "unknown key" else WARMUP_SECONDS
                drive(server.port, files[kind], warmup, script)
            lookups.append(key_lookups())
            runs = {kind: [] for kind in KINDS}
            round_ratios = []
            order = list(KINDS) + list(KINDS)[::-1]  # ABCDDCBA, repeated: each half is one round
            workers, redis_process = children_of(server.process.pid), redis_pid()
            for number in range(SLICES * len(KINDS)):
                kind = order[number % len(order)]
                before = cpu_seconds(workers), cpu_seconds([redis_process] if redis_process else [])
                run = drive(server.port, files[kind], SLICE_SECONDS, script)
                after = cpu_seconds(workers), cpu_seconds([redis_process] if redis_process else [])
                run["worker_cpu"], run["redis_cpu"] = after[0] - before[0], after[1] - before[1]
                runs[kind].append(run)
                if number % len(KINDS) == len(KINDS) - 1:  # a round is complete
                    round_ratios.append(rate(runs["unknown key"][-1]) / rate(runs["malformed key"][-1]))
            lookups.append(key_lookups())
            log(f"load done ({time.monotonic() - started:.0f} s)")
        finally:
            server.stop()
    report(
        runs,
        round_ratios,
        sight_lookups=(lookups[1] - lookups[0], lookups[2] - lookups[1]),
        slice_lookups=lookups[4] - lookups[3],
        loads=(load_before, load_average()),
        seconds=time.monotonic() - started,
    )


def report(runs, round_ratios, *, sight_lookups, slice_lookups, loads, seconds):
    figures = {}
    for kind, slices in runs.items():
        histogram, statuses = {}, {}
        for run in slices:
            for micros, count in run["histogram"].items():
                histogram[micros] = histogram.get(micros, 0) + count
            for status, count in run["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
        requests = sum(run["requests"] for run in slices)
        figures[kind] = {
            "rate": requests / sum(run["seconds"] for run in slices),
            "requests": requests,
            "p50": percentile(histogram, 0.50) / 1000,
            "p99": percentile(histogram, 0.99) / 1000,
            "unexpected": requests - sum(statuses.get(status, 0) for status in EXPECTED_STATUSES[kind]),
            "worker_us": sum(run["worker_cpu"] for run in slices) / requests * 1e6 if requests else 0,
            "redis_us": sum(run["redis_cpu"] for run in slices) / requests * 1e6 if requests else 0,
        }
    print(
        f"key rejection benchmark: GET {PATH}, gunicorn {WORKERS} workers x {THREADS} gthreads, "
        f"PostgreSQL + Redis, DEBUG off, enforcement on; wrk with {CONNECTIONS} connections, "
        f"{SLICES} x {SLICE_SECONDS:g} s per kind in alternating slices; {os.cpu_count()} CPUs, "
        f"load average {loads[0]} before, {loads[1]} after"
    )
    print()
    rows = [
        ("requests/s", lambda f: f"{f['rate']:,.0f}"),
        ("p50 latency, ms", lambda f: f"{f['p50']:.2f}"),
        ("p99 latency, ms", lambda f: f"{f['p99']:.2f}"),
        ("requests", lambda f: f"{f['requests']:,}"),
        ("other statuses", lambda f: f"{f['unexpected']:,}"),
        ("worker CPU/req, us", lambda f: f"{f['worker_us']:,.0f}"),
        ("Redis CPU/req, us", lambda f: f"{f['redis_us']:,.0f}"),
    ]
    header = "".join(f"{f'{kind} ({STATUS_LABELS[kind]})':>22}" for kind in KINDS)
    print(f"{'':<20}{header}")
    print("-" * (20 + 22 * len(KINDS)))
    for label, cell in rows:
        print(f"{label:<20}" + "".join(f"{cell(figures[kind]):>22}" for kind in KINDS))
    ratio = statistics.median(round_ratios)
    pooled = figures["unknown key"]["rate"] / figures["malformed key"]["rate"]
    print()
    print(
        f"unknown-key / malformed-key rejections/s: {ratio:.0%} (median of {len(round_ratios)} rounds of "
        f"adjacent slices, range {min(round_ratios):.0%} to {max(round_ratios):.0%}; pooled {pooled:.0%})"
    )
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"  [{verdict}] target: unknown-key rejections/s >= {TARGET:.0%} of malformed-key rejections/s")
    print(
        f"key lookups in PostgreSQL: {sight_lookups[0]:,} at the first sight of {POOL:,} unknown keys, "
        f"{sight_lookups[1]:,} at their second; {slice_lookups:,} during the slices "
        f"({figures['unknown key']['requests'] + figures['refused address']['requests']:,} unknown keys; "
        "the valid key's context reloads once a minute and its last_used_at write, at most every 2 s "
        "per process, count too)"
    )
    if any(figure["unexpected"] for figure in figures.values()):
        print("  WARNING: some answers had another status than their kind's")
    print(f"({seconds:.0f} s)")


if __name__ == "__main__":
    main()
