"""Benchmark: this project's limiter against DRF's throttle, `limits` and a bare EVALSHA.

    .venv/bin/python benchmarks/limiter.py        (or: make bench-limiter)

Four contenders, all on the same Redis database and measured in one run:

- ours:   metering.limiter.RedisLimiter, one EVALSHA of check_and_reserve.lua per check;
- DRF:    rest_framework's SimpleRateThrottle on the django-redis cache;
- limits: the `limits` library's MovingWindowRateLimiter on Redis;
- floor:  a trivial one-EVALSHA script (INCR) through redis-py's client (its
          pool, command packing and reply parsing): one round trip as an
          application makes it, the reference the issue calibrates (`limits`
          about at the floor, DRF's two round trips about 60% of it);
- raw floor: the same script packed once and sent on a connection kept per
          thread, the way ours sends its own: the least one round trip costs
          a Python process, so "vs raw floor" is all that ours adds to it.

For each: checks per second with 1 and 4 processes (each with its own
connections, spread over 1,000 customers so that no contender's per-customer
state grows during the run), p50/p99 latency per check (from the 1-process
run), how many of 1,000 attempts at a quota of 100 per day 64 concurrent
threads get admitted, and the Redis bytes one customer costs at a quota of
500,000 (MEMORY USAGE summed over the customer's keys).

Redis: BENCH_REDIS_URL (default redis://127.0.0.1:6379/10). The database is
FLUSHED between contenders, so never point it at a database that holds data.
An ambient REDIS_URL is deliberately ignored for that reason.
"""

import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
# Not this folder: its http.py would shadow the standard library's `http`.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or os.curdir).resolve() != ROOT / "benchmarks")]
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
os.environ["REDIS_URL"] = REDIS_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas.settings")
# The deployed settings (DEBUG off: no query log growing through the run), with
# this run's own secrets, which DEBUG off requires.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", os.urandom(24).hex())
os.environ.setdefault("API_KEY_PEPPER", os.urandom(24).hex())

import django  # noqa: E402

django.setup()

DURATION = float(os.environ.get("BENCH_DURATION", "3"))  # per contender and process count
ROUNDS = 10
SLICE = DURATION / ROUNDS
WARMUP = 0.2
CUSTOMERS = range(1, 1001)
PARALLEL_PROCESSES = 4
CONCURRENT_WORKERS = 64
ATTEMPTS = 1000
ADMISSION_QUOTA = 100
MEMORY_QUOTA = 500_000
HUGE = 10**12  # a limit no throughput run reaches
TIME_LIMIT_SECONDS = 240
CONTENDERS = ["ours", "DRF", "limits", "floor", "raw floor"]
FLOORS = ("floor", "raw floor")
FLOOR_SCRIPT = "return redis.call('INCR', KEYS[1])"


def redis_client():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def flush():
    client = redis_client()
    db = client.connection_pool.connection_kwargs.get("db", 0)
    if db == 0:
        sys.exit("refusing to flush Redis database 0: set BENCH_REDIS_URL to a scratch database")
    client.flushdb()


# --- the contenders: make_check(limit, period) -> check(customer index) -> admitted -------------


def day_bounds():
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def month_bounds():
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


def ours_limits(customer_id, quota, bounds, burst=10**6):
    from metering.limiter import Limits

    return Limits(customer_id, burst=burst, quota=quota, period_start=bounds[0], period_end=bounds[1])


def make_ours(limit):
    from metering.limiter import RedisLimiter

    limiter = RedisLimiter()  # the production path: django-redis's connection
    limits = [ours_limits(customer, limit, day_bounds()) for customer in CUSTOMERS]

    def check(index):
        return limiter.check(limits[index], now_ms=int(time.time() * 1000)).admitted

    return check


def make_drf(limit):
    from rest_framework.throttling import SimpleRateThrottle

    class BenchThrottle(SimpleRateThrottle):
        rate = f"{limit}/day"

        def get_cache_key(self, request, view):
            return f"throttle_bench_{request.customer}"

    requests = [SimpleNamespace(customer=customer) for customer in CUSTOMERS]

    def check(index):
        # DRF instantiates its throttles per request.
        return BenchThrottle().allow_request(requests[index], None)

    return check


def make_limits(limit):
    from limits import RateLimitItemPerDay, storage, strategies

    limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(REDIS_URL))
    item = RateLimitItemPerDay(limit)
    names = [str(customer) for customer in CUSTOMERS]

    def check(index):
        return limiter.hit(item, "customer", names[index])

    return check


def make_floor(limit):
    # One EVALSHA as an application sends it: redis-py's client call.
    client = redis_client()
    sha = client.script_load(FLOOR_SCRIPT)
    keys = [f"floor:{{c{customer}}}" for customer in CUSTOMERS]

    def check(index):
        return client.evalsha(sha, 1, keys[index]) <= limit

    return check


def make_raw_floor(limit):
    # The least a Python process can spend on one EVALSHA round trip: the
    # command packed once, sent on the connection ours keeps per thread.
    from metering.limiter.wire import bulk as _bulk
    from metering.limiter.wire import send_line as _send_line

    client = redis_client()
    sha = client.script_load(FLOOR_SCRIPT)
    commands = []
    for customer in CUSTOMERS:
        items = ("EVALSHA", sha, 1, f"floor:{{c{customer}}}")
        commands.append((b"*4\r\n" + b"".join(map(_bulk, items)), items))

    def check(index):
        return _send_line(client, *commands[index]) <= limit

    return check


MAKERS = {
    "ours": make_ours,
    "DRF": make_drf,
    "limits": make_limits,
    "floor": make_floor,
    "raw floor": make_raw_floor,
}


# --- throughput and latency --------------------------------------------------------------------


def run_for(check, seconds, timings=None):
    """Checks until `seconds` pass, cycling over the customers; (checks, denied, seconds)."""
    count = denied = 0
    customers = len(CUSTOMERS)
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    while True:
        for index in range(customers):
            if timings is not None:
                before = clock()
                admitted = check(index)
                timings.append(clock() - before)
            else:
                admitted = check(index)
            denied += not admitted
            count += 1
            if not count % 64 and clock() >= deadline:
                return count, denied, clock() - started


def schedule():
    """(round, contender) slices: contenders take turns, in a rotating order, so
    that the noise of a shared machine falls on all of them alike."""
    for number in range(ROUNDS):
        shift = number % len(CONTENDERS)
        yield from CONTENDERS[shift:] + CONTENDERS[:shift]


def new_tally():
    return {name: [0, 0, 0.0] for name in CONTENDERS}  # checks, denied, seconds


def add(tally, name, counted):
    for index, value in enumerate(counted):
        tally[name][index] += value


def warmed_up_checks():
    checks = {name: MAKERS[name](HUGE) for name in CONTENDERS}
    for check in checks.values():
        run_for(check, WARMUP)
    return checks


def throughput_worker(barrier, results):
    checks, tally = warmed_up_checks(), new_tally()
    for name in schedule():
        barrier.wait(timeout=60)  # start together
        add(tally, name, run_for(checks[name], SLICE))
        barrier.wait(timeout=60)  # the parent flushes between slices
    results.put(tally)


def throughput_parallel(processes):
    """Every contender's checks/s summed over `processes` processes, and denials."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    workers = [context.Process(target=throughput_worker, args=(barrier, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        for _ in schedule():
            barrier.wait(timeout=60)
            barrier.wait(timeout=60)
            flush()
        tallies = [results.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
    return {
        name: (sum(t[name][0] / t[name][2] for t in tallies), sum(t[name][1] for t in tallies))
        for name in CONTENDERS
    }


def throughput_single():
    """Every contender's checks/s in this process, denials, and p50/p99 latency in us."""
    checks, tally = warmed_up_checks(), new_tally()
    timings = {name: [] for name in CONTENDERS}
    for name in schedule():
        flush()
        add(tally, name, run_for(checks[name], SLICE, timings[name]))
    figures = {}
    for name, (count, denied, seconds) in tally.items():
        quantiles = statistics.quantiles(timings[name], n=100, method="inclusive")
        figures[name] = (count / seconds, denied, quantiles[49] * 1e6, quantiles[98] * 1e6)
    return figures


# --- exactness under concurrency ---------------------------------------------------------------


def admitted_under_concurrency(name):
    check = MAKERS[name](ADMISSION_QUOTA)
    barrier = threading.Barrier(CONCURRENT_WORKERS)
    admitted = [0] * CONCURRENT_WORKERS

    def worker(number):
        barrier.wait(timeout=30)
        for _ in range(number, ATTEMPTS, CONCURRENT_WORKERS):
            admitted[number] += bool(check(0))  # all on one customer

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CONCURRENT_WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sum(admitted)


# --- memory per customer at quota 500,000 ------------------------------------------------------


def memory_of(pattern):
    client = redis_client()
    keys = list(client.scan_iter(match=pattern, count=1000))
    return sum(client.memory_usage(key, samples=0) or 0 for key in keys), len(keys)


def pipelined(script_call, total, batch=10_000):
    """Runs `total` script calls in pipelines; returns the results' admitted count."""
    client = redis_client()
    admitted = 0
    for done in range(0, total, batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(batch, total - done)):
            script_call(pipe)
        admitted += sum(1 for result in pipe.execute() if script_call.admitted(result))
    return admitted


class QueueingClient:
    """Stands in for RedisLimiter's Redis client: each script call the limiter
    makes (its real keys and arguments) is queued on a pipeline instead of sent
    alone. The limiter sees a placeholder reply; the pipeline gets the real one."""

    def __init__(self):
        self.pipe = None
        from metering.limiter.redis_backend import CHECK_AND_RESERVE

        redis_client().script_load(CHECK_AND_RESERVE)  # EVALSHA in a pipeline cannot load it

    def execute_command(self, *command):
        self.pipe.execute_command(*command)
        return b"0 0 0 0"  # "admitted"; the real reply is the pipeline's


def memory_ours():
    from metering.limiter import RedisLimiter

    queueing = QueueingClient()
    limiter = RedisLimiter(client=queueing)
    limits = ours_limits(1, MEMORY_QUOTA, month_bounds())

    def call(pipe):
        queueing.pipe = pipe
        limiter.check(limits, now_ms=int(time.time() * 1000))

    call.admitted = lambda result: result.split()[0] == b"0"
    admitted = pipelined(call, MEMORY_QUOTA - 1)
    # The last check with a burst of 1/s, so that its burst key lives a second
    # (with the huge fill burst it expires within ~2 ms) and can be measured.
    time.sleep(0.05)
    last = RedisLimiter().check(
        ours_limits(1, MEMORY_QUOTA, month_bounds(), burst=1), now_ms=int(time.time() * 1000)
    )
    admitted += last.admitted
    assert last.quota_used == MEMORY_QUOTA, last
    size, keys = memory_of("metering:*{c1}*")
    note = (
        f"{admitted:,} real checks (RedisLimiter.check, its script calls pipelined); "
        f"the last with burst=1 so its burst key is still alive to measure ({keys} keys)"
    )
    return size, note


def memory_active_customer(threads: int) -> int:
    """Redis bytes of one active customer, every key of theirs included: the
    burst state, the quota counter, and the pending usage hash (one key, one
    endpoint, this hour) with the witnesses of the `threads` that served them."""
    import threading

    from metering.keys import usage_field
    from metering.limiter import RedisLimiter

    flush()
    limiter = RedisLimiter()
    limits = ours_limits(7, MEMORY_QUOTA, month_bounds(), burst=1000)
    now_ms = int(time.time() * 1000)
    field = usage_field(now_ms // 3_600_000 * 3600, 1, "api:echo")

    def serve():
        for _ in range(10):
            assert limiter.check(limits, now_ms=int(time.time() * 1000), bill_field=field).admitted

    workers = [threading.Thread(target=serve) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return memory_of("metering:*{c7}*")[0]


def memory_drf():
    check = make_drf(MEMORY_QUOTA)
    sizes = {}
    for done in range(1, 5001):
        assert check(0)
        if done in (2500, 5000):
            sizes[done] = memory_of("*throttle_bench_1")[0]
    per_check = (sizes[5000] - sizes[2500]) / 2500
    size = sizes[5000] + per_check * (MEMORY_QUOTA - 5000)
    note = (
        f"EXTRAPOLATED linearly from 2,500 ({sizes[2500]:,} B) and 5,000 ({sizes[5000]:,} B) "
        "real checks: one pickled list entry per check, each check rewrites the whole list"
    )
    return size, note


def memory_limits():
    from limits import RateLimitItemPerMonth, storage, strategies

    limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(REDIS_URL))
    item = RateLimitItemPerMonth(MEMORY_QUOTA)
    cost = 1000
    admitted = sum(limiter.hit(item, "customer", "1", cost=cost) for _ in range(MEMORY_QUOTA // cost))
    size, keys = memory_of("LIMITS*")
    note = (
        f"{admitted} hits of cost {cost:,} = {admitted * cost:,} list entries, as many as "
        f"{MEMORY_QUOTA:,} hits of cost 1 ({keys} key)"
    )
    return size, note


def memory_floor():
    script = redis_client().register_script(FLOOR_SCRIPT)

    def call(pipe):
        script(keys=["floor:{c1}"], client=pipe)

    call.admitted = lambda result: True
    admitted = pipelined(call, MEMORY_QUOTA)
    size, keys = memory_of("floor:*")
    return size, f"{admitted:,} real INCRs, pipelined ({keys} key)"


MEMORY = {
    "ours": memory_ours,
    "DRF": memory_drf,
    "limits": memory_limits,
    "floor": memory_floor,
    "raw floor": memory_floor,
}


# --- the run -----------------------------------------------------------------------------------


def measure():
    results = {name: {} for name in CONTENDERS}
    for name, (rate, denied, p50, p99) in throughput_single().items():
        results[name].update(rate1=rate, denied=denied, p50=p50, p99=p99)
    progress("1 process")
    for name, (rate, denied) in throughput_parallel(PARALLEL_PROCESSES).items():
        results[name]["rate4"] = rate
        results[name]["denied"] += denied
    progress(f"{PARALLEL_PROCESSES} processes")
    for name in CONTENDERS:
        flush()
        results[name]["admitted"] = admitted_under_concurrency(name) if name not in FLOORS else None
        flush()
        results[name]["bytes"], results[name]["bytes_note"] = MEMORY[name]()
        progress(f"{name}: admission and memory")
    flush()
    return results


STARTED = time.monotonic()


def progress(what):
    print(f"  done: {what} ({time.monotonic() - STARTED:.0f} s)", file=sys.stderr, flush=True)


def table(results):
    floor, raw = results["floor"], results["raw floor"]
    rows = [
        ("checks/s, 1 process", lambda f: f"{f['rate1']:,.0f}"),
        (f"checks/s, {PARALLEL_PROCESSES} processes", lambda f: f"{f['rate4']:,.0f}"),
        ("vs floor, 1 process", lambda f: f"{f['rate1'] / floor['rate1']:.0%}"),
        (f"vs floor, {PARALLEL_PROCESSES} processes", lambda f: f"{f['rate4'] / floor['rate4']:.0%}"),
        ("vs raw floor, 1 process", lambda f: f"{f['rate1'] / raw['rate1']:.0%}"),
        (f"vs raw floor, {PARALLEL_PROCESSES} processes", lambda f: f"{f['rate4'] / raw['rate4']:.0%}"),
        ("p50 latency, us", lambda f: f"{f['p50']:.0f}"),
        ("p99 latency, us", lambda f: f"{f['p99']:.0f}"),
        (
            f"admitted of {ATTEMPTS:,} at quota {ADMISSION_QUOTA}",
            lambda f: "n/a" if f["admitted"] is None else f"{f['admitted']:,}",
        ),
        (f"Redis bytes/customer, quota {MEMORY_QUOTA:,}", lambda f: f"{f['bytes']:,.0f}"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["".join([f"{'':<{width}}", *(f"{name:>14}" for name in CONTENDERS)])]
    lines.append("-" * len(lines[0]))
    for label, cell in rows:
        lines.append("".join([f"{label:<{width}}", *(f"{cell(results[n]):>14}" for n in CONTENDERS)]))
    return "\n".join(lines)


def main():
    def out_of_time(*_):
        for child in multiprocessing.active_children():
            child.terminate()
        sys.exit(f"benchmark exceeded its time limit of {TIME_LIMIT_SECONDS} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(TIME_LIMIT_SECONDS)
    client = redis_client()
    if sys.argv[1:] == ["--memory"]:
        print_active_customer_memory()
        return
    print(
        f"limiter benchmark: Redis {client.info('server')['redis_version']} at {REDIS_URL}, "
        f"{os.cpu_count()} CPUs, {DURATION:g} s of checks per contender and process count "
        f"({ROUNDS} interleaved slices) over {len(CUSTOMERS):,} customers, "
        f"{CONCURRENT_WORKERS} threads x {ATTEMPTS:,} attempts at quota {ADMISSION_QUOTA}/day",
        flush=True,
    )
    results = measure()
    print()
    print(table(results))
    print()
    print("Redis bytes, how measured (MEMORY USAGE SAMPLES 0, summed over the customer's keys):")
    for name in CONTENDERS:
        print(f"  {name:<9} {results[name]['bytes_note']}")
    for name in CONTENDERS:
        if results[name]["denied"]:
            print(f"  WARNING: {name} denied {results[name]['denied']:,} throughput checks")
    ours = results["ours"]
    print()
    print("Targets:")
    targets = [("0 over-admission (ours admits exactly 100)", ours["admitted"] == ADMISSION_QUOTA)]
    for floor_name in FLOORS:
        floor = results[floor_name]
        for rate, processes in (("rate1", 1), ("rate4", PARALLEL_PROCESSES)):
            ratio = ours[rate] / floor[rate]
            label = f"ours >= 90% of the {floor_name}, {processes} process(es) ({ratio:.0%})"
            targets.append((label, ratio >= 0.9))
    targets.append((f"<= 1 KB Redis per customer ({ours['bytes']:,.0f} B)", ours["bytes"] <= 1024))
    for label, met in targets:
        print(f"  [{'met' if met else 'MISSED'}] {label}")
    print_active_customer_memory()
    print(f"({time.monotonic() - STARTED:.0f} s)")


def memory_key_context() -> tuple[int, int]:
    """(bytes of a key's shared context, bytes of its version once a change set
    one), as apikeys.context stores them for a key in use."""
    from apikeys import context

    hashed_key = "v1$" + os.urandom(32).hex()  # the shape of a stored hash
    now = time.time()
    key_context = context.KeyContext(
        key_id=1_234_567,
        key_prefix="sk_live_abcd1234",
        customer_id=1_234_567,
        user_id=1_234_567,
        scopes=("api",),
        revoked=False,
        expires_at=None,
        tier_slug="pro",
        quota=50_000,
        quota_period="month",
        burst=20,
        hard_quota=False,
        overage_ceiling=None,
        billing_period_start=now,
        billing_period_end=now + 30 * 86400,
        suspended_from=None,
    )
    context.new_versions([hashed_key])
    version = context.cache.get(context.version_key(hashed_key))
    context.store_shared(hashed_key, key_context, version, loaded_at=now)
    client = redis_client()
    sizes = [
        client.memory_usage(context.cache.make_key(name), samples=0)
        for name in (context.context_key(hashed_key), context.version_key(hashed_key))
    ]
    context.cache.delete_many([context.context_key(hashed_key), context.version_key(hashed_key)])
    return sizes[0], sizes[1]


def print_active_customer_memory():
    """Issue 15's target: at most 512 B of Redis per active customer, all keys included."""
    print()
    print("Redis bytes per active customer, all keys (burst, quota, pending usage with witnesses):")
    for threads in (1, 8):
        size = memory_active_customer(threads)
        print(f"  served by {threads} thread(s): {size:,} B  [{'met' if size <= 512 else 'MISSED'}] <= 512 B")
    from apikeys.context import CONTEXT_TTL_SECONDS, VERSION_TTL_SECONDS

    stored, version = memory_key_context()
    print("Redis bytes per API key in the key-context cache (apikeys.context):")
    print(f"  its context, kept {CONTEXT_TTL_SECONDS / 86400:g} days after its last load: {stored:,} B")
    print(
        f"  its version, kept {VERSION_TTL_SECONDS / 86400:g} days after a change to the key, "
        f"its customer or tier: {version:,} B"
    )
    print(
        f"  a million customers, one key each, all used this week: {stored * 10**6 / 2**20:,.0f} MiB; "
        f"{(stored + version) * 10**6 / 2**20:,.0f} MiB if every one also changed"
    )


if __name__ == "__main__":
    main()
