"""Benchmark: how many customers a second the usage flush moves from Redis to PostgreSQL.

    .venv/bin/python benchmarks/flush.py        (or: make bench-flush)

Creates BENCH_CUSTOMERS customers (100,000 by default), each with a user and
an API key (bulk inserts), and gives each pending usage in Redis as the limiter
leaves it: a pending hash with two endpoints' counts and the pending TTL
(pipelined). Then runs one whole flush (metering.flush.flush_usage: the SCANs,
the snapshots, the batched apply, the discards), times it, and checks that
PostgreSQL received every unit and Redis kept none. The goal: all 100,000
within the flush's 60 s interval.

With BENCH_FLUSH_CLUSTER=1 (make bench-flush-cluster) the same on a local
Redis Cluster of 3 masters it starts and stops (benchmarks/cluster.py:
redis-server on free ports, AOF on), with REDIS_CLUSTER=true.

PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/saas_bench,
created and migrated when missing); the rows the benchmark creates are deleted
at its end. Redis: BENCH_REDIS_URL (default redis://127.0.0.1:6379/10), FLUSHED
first, so never point it at a database that holds data.
"""

import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
# Not this folder: its http.py would shadow the standard library's `http`.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or os.curdir).resolve() != ROOT / "benchmarks")]
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/saas_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
CLUSTER = os.environ.get("BENCH_FLUSH_CLUSTER", "").lower() in ("1", "true", "yes")
ENDPOINTS = {"api:echo": 3, "api:primes": 2}  # each customer's pending units by endpoint
PENDING_TTL_SECONDS = 7 * 24 * 3600
INSERT_BATCH = 5000
PREFIX = "flushbench"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_database() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def setup_django() -> None:
    os.environ.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        DJANGO_SETTINGS_MODULE="saas.settings",
        DEBUG="false",  # DEBUG keeps every query in memory
        SECRET_KEY=os.environ.get("SECRET_KEY", uuid.uuid4().hex),
        API_KEY_PEPPER=os.environ.get("API_KEY_PEPPER", uuid.uuid4().hex),
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()


def delete_bench_rows() -> None:
    """Raw SQL on a connection of its own: the ORM would load 100,000
    customers to cascade, metering.protection refuses deleting customers with
    pending usage, and the app's connections cut a statement at
    DATABASE_STATEMENT_TIMEOUT_SECONDS (3 s), less than these deletes take."""
    import psycopg
    from django.contrib.auth import get_user_model

    from apikeys.models import APIKey
    from metering.models import UsageRecord
    from plans.models import Customer

    users = f"SELECT id FROM {get_user_model()._meta.db_table} WHERE username LIKE %(pattern)s"
    customers = f"SELECT id FROM {Customer._meta.db_table} WHERE user_id IN ({users})"
    pattern = {"pattern": f"{PREFIX}-%"}
    with psycopg.connect(DATABASE_URL) as connection:
        connection.execute(
            f"DELETE FROM {UsageRecord._meta.db_table} WHERE customer_id IN ({customers})", pattern
        )
        connection.execute(f"DELETE FROM {APIKey._meta.db_table} WHERE customer_id IN ({customers})", pattern)
        connection.execute(f"DELETE FROM {Customer._meta.db_table} WHERE user_id IN ({users})", pattern)
        connection.execute(
            f"DELETE FROM {get_user_model()._meta.db_table} WHERE username LIKE %(pattern)s", pattern
        )


def create_customers(count: int) -> list[tuple[int, int]]:
    """(customer id, key id) of `count` new customers, by bulk inserts."""
    from django.contrib.auth import get_user_model

    from apikeys.models import APIKey
    from plans.models import Customer, Tier

    tier = Tier.objects.order_by("pk").first()
    User = get_user_model()
    pairs = []
    for start in range(0, count, INSERT_BATCH):
        numbers = range(start, min(start + INSERT_BATCH, count))
        users = User.objects.bulk_create(
            [User(username=f"{PREFIX}-{n}", email=f"{PREFIX}-{n}@example.com", password="!") for n in numbers]
        )
        customers = Customer.objects.bulk_create([Customer(user=user, tier=tier) for user in users])
        keys = APIKey.objects.bulk_create(
            [
                APIKey(
                    customer=customer,
                    name="bench",
                    prefix=f"fb{customer.pk}",
                    hashed_key=f"bench${uuid.uuid4().hex}",
                )
                for customer in customers
            ]
        )
        pairs += [(key.customer_id, key.pk) for key in keys]
    return pairs


def pend_usage(client, pairs: list[tuple[int, int]], hour: int) -> int:
    """Each customer's pending hash as the limiter leaves it; the units pended."""
    from metering.keys import pending_key, usage_field

    for start in range(0, len(pairs), INSERT_BATCH):
        with client.pipeline(transaction=False) as pipe:
            for customer_id, key_id in pairs[start : start + INSERT_BATCH]:
                key = pending_key(customer_id)
                pipe.hset(
                    key, mapping={usage_field(hour, key_id, e): units for e, units in ENDPOINTS.items()}
                )
                pipe.expire(key, PENDING_TTL_SECONDS)
            pipe.execute()
    return len(pairs) * sum(ENDPOINTS.values())


def main() -> None:
    if not CLUSTER:
        run()
        return
    import tempfile

    from benchmarks.cluster import RedisCluster

    global REDIS_URL
    with tempfile.TemporaryDirectory(prefix="bench-flush-cluster-") as directory:
        cluster = RedisCluster(Path(directory), replicas=0)
        try:
            cluster.start()
            REDIS_URL = cluster.url(cluster.masters()[0])
            os.environ["REDIS_CLUSTER"] = "true"
            run()
        finally:
            cluster.stop()


def run() -> None:
    ensure_database()
    setup_django()
    import io

    from django.conf import settings
    from django.core.management import call_command
    from django.db.models import Sum
    from django_redis import get_redis_connection

    from metering.flush import flush_usage
    from metering.keys import hour_of
    from metering.models import UsageRecord
    from plans.models import Tier

    call_command("migrate", verbosity=0)
    if not Tier.objects.exists():
        call_command("sync_tiers", str(ROOT / "tiers.toml"), stdout=io.StringIO())
    client = get_redis_connection("default")
    if not CLUSTER and client.connection_pool.connection_kwargs.get("db", 0) == 0:
        sys.exit("refusing to flush Redis database 0: set BENCH_REDIS_URL to a scratch database")
    client.flushdb()
    delete_bench_rows()
    try:
        started = time.perf_counter()
        pairs = create_customers(CUSTOMERS)
        created = time.perf_counter()
        units = pend_usage(client, pairs, hour_of(int(time.time() * 1000)))
        log(
            f"created {len(pairs):,} customers with keys in {created - started:.1f} s, "
            f"their pending usage in Redis in {time.perf_counter() - created:.1f} s"
        )
        load = os.getloadavg()
        started = time.perf_counter()
        result = flush_usage()
        seconds = time.perf_counter() - started
        bench_rows = UsageRecord.objects.filter(customer__user__username__startswith=f"{PREFIX}-")
        in_ledger = bench_rows.aggregate(total=Sum("count"))["total"]
        left_in_redis = sum(1 for _ in client.scan_iter(match="metering:v1:*", count=5000))
    finally:
        client.flushdb()
        delete_bench_rows()
    exact = result.customers == len(pairs) and result.units == units == in_ledger and left_in_redis == 0
    layout = " (Redis Cluster, 3 masters)" if CLUSTER else ""
    print(
        f"flush{layout}: {result.customers:,} customers ({result.units:,} units) moved in {seconds:.1f} s, "
        f"{result.customers / seconds:,.0f} customers/s (batches of {settings.USAGE_FLUSH_BATCH_SIZE}); "
        f"ledger {'exact' if exact else f'WRONG: {in_ledger} of {units} units, {left_in_redis} keys left'}; "
        f"load average {load[0]:.1f} at the start on {os.cpu_count()} cores"
    )
    if not exact:
        sys.exit(1)


if __name__ == "__main__":
    main()
