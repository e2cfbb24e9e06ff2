"""make bench-cluster: the API on a local Redis Cluster and 3 gunicorn nodes, one table.

Starts a Redis Cluster of 3 masters with 2 replicas each (1 each with
BENCH_CLUSTER_REPLICA_ACKS=0) (redis-server on free ports below 45535, each
node's cluster bus on its port + 10000, AOF on, node timeout 2 s,
cluster-require-full-coverage no, in a temporary directory, joined with
`redis-cli --cluster create`) and 3 gunicorn nodes (1 worker x 4 threads each,
REDIS_CLUSTER=true, REDIS_REPLICA_ACKS=1, each REDIS_URL naming a different
master, DEBUG off) on a scratch database. A fresh customer of quota 100 and a
large burst, then:

1. exactness: 400 concurrent requests to /api/v1/echo spread over the 3 nodes
   (exactly 100 must be admitted with a 200, the other 300 get a 429);
2. failover: the quota raised to 100,000, load over the 3 nodes, the master
   owning the customer's hash slot killed with SIGKILL, the load kept until
   its replica has taken over and the API serves again: how long the 503s
   lasted, the status codes, the 500s (must be 0), and meanwhile a customer
   on another master (must see no 503);
3. billing: `manage.py flush_usage` on the cluster, then the customer's units
   in PostgreSQL against every 200 the benchmark was served (must be equal).

Every process it starts is stopped at the end. Traffic goes to 127.0.0.1 only;
bounded in time (about 1 minute). Environment: BENCH_CLUSTER_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/saas_benchcluster, created and
migrated when missing), BENCH_CLUSTER_THREADS (client threads during the
failover, 12), BENCH_CLUSTER_REPLICA_ACKS (1; 0 for asynchronous replication
alone, which can lose billed units in a failover), BENCH_CLUSTER_REPLICAS
(per master: 2 with acks, else 1).
"""

import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: benchmarks.chaos (and, from it, the project)

from benchmarks import chaos  # noqa: E402  the scratch database, manage.py, the servers' environment

HOST = "127.0.0.1"
DATABASE_URL = os.environ.get(
    "BENCH_CLUSTER_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/saas_benchcluster"
)
LOAD_THREADS = int(os.environ.get("BENCH_CLUSTER_THREADS", 12))
NEIGHBOUR_THREADS = 4  # a customer on another master, meanwhile
# Replicas that must hold a billed unit before its request is served
# (REDIS_REPLICA_ACKS, metering.limiter.replication): 1, as README advises on
# a cluster; 0 to see what asynchronous replication alone can lose.
REPLICA_ACKS = os.environ.get("BENCH_CLUSTER_REPLICA_ACKS", "1")
MASTERS = 3
# A master whose units wait for a replica needs two: after its failover the
# promoted replica keeps one, else every billed request of its slots is a 503.
REPLICAS = MASTERS * int(os.environ.get("BENCH_CLUSTER_REPLICAS", 1 + min(int(REPLICA_ACKS), 1)))
WEB_NODES = 3
BUS_OFFSET = 10_000
HIGHEST_PORT = 45_535 - 1  # so that every bus port stays below 55535
QUOTA, RAISED_QUOTA, BURST = 100, 100_000, 10**6
CONCURRENT = 400
STEADY_SECONDS = 3.0
SERVING_AGAIN_SECONDS = 2.0  # load kept after the first 200 that follows the failover
FAILOVER_LIMIT_SECONDS = 60.0
STARTUP_SECONDS = 60.0
CLIENT_TIMEOUT_SECONDS = 15.0
ECHO = "/api/v1/echo?msg=cluster"


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# --- the Redis Cluster ---------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` free ports on 127.0.0.1 whose bus ports (+10000) are free too."""
    ports: list[int] = []
    for port in random.sample(range(20_000, HIGHEST_PORT), 2_000):
        if {port, port + BUS_OFFSET} & {p + d for p in ports for d in (0, BUS_OFFSET)}:
            continue
        if _port_free(port) and _port_free(port + BUS_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no free ports for a local Redis Cluster")


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
    ).stdout


def wait_for(check, what: str, seconds: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {seconds:.0f} s")


@dataclass
class Node:
    port: int
    process: subprocess.Popen

    def alive(self) -> bool:
        return self.process.poll() is None


class RedisCluster:
    def __init__(self, directory: Path, replicas: int = REPLICAS):
        self.directory, self.replica_count = directory, replicas
        self.nodes: list[Node] = []

    def start(self) -> None:
        for port in free_ports(MASTERS + self.replica_count):
            node_dir = self.directory / f"redis-{port}"
            node_dir.mkdir()
            process = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(node_dir)]
                + ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
                + ["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "yes"]
                # The other masters keep serving their slots while one fails over.
                + ["--cluster-require-full-coverage", "no"],
                stdout=(node_dir / "redis.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.nodes.append(Node(port, process))
        for node in self.nodes:
            wait_for(
                lambda node=node: redis_cli(node.port, "ping").strip() == "PONG", f"{node.port} answered"
            )
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"{HOST}:{node.port}" for node in self.nodes)]
            + ["--cluster-replicas", str(self.replica_count // MASTERS), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for(lambda: all(self.ok(node) for node in self.nodes), "every node reported cluster_state:ok")

        # Each replica fully synced, so the failover measured is not a replica still loading.
        def synced():
            replicas = self.replicas()
            return len(replicas) == self.replica_count and all(
                "master_link_status:up" in redis_cli(port, "info", "replication") for port in replicas
            )

        wait_for(synced, "every replica synced with its master")

    def ok(self, node: Node) -> bool:
        return "cluster_state:ok" in redis_cli(node.port, "cluster", "info")

    def _nodes_view(self) -> list[list[str]]:
        """CLUSTER NODES as a live node sees the cluster now, one list of fields a node."""
        live = next(node for node in self.nodes if node.alive())
        return [line.split() for line in redis_cli(live.port, "cluster", "nodes").splitlines()]

    @staticmethod
    def _port(address: str) -> int:
        return int(address.split("@")[0].rsplit(":", 1)[1])

    def masters(self) -> list[int]:
        """Reachable masters serving slots (a new cluster's replicas start as empty masters)."""
        return [
            self._port(fields[1])
            for fields in self._nodes_view()
            if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8
        ]

    def replicas(self) -> list[int]:
        return [self._port(fields[1]) for fields in self._nodes_view() if "slave" in fields[2]]

    def owner_of(self, key: str) -> int | None:
        """The port of the master serving `key`'s slot; None while no
        reachable master does (failing over)."""
        live = next(node for node in self.nodes if node.alive())
        slot = int(redis_cli(live.port, "cluster", "keyslot", key).strip())
        for fields in self._nodes_view():
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for interval in fields[8:]:
                if interval.startswith("["):
                    continue  # a slot being migrated
                low, _, high = interval.partition("-")
                if int(low) <= slot <= int(high or low):
                    return self._port(fields[1])
        return None

    def kill(self, port: int) -> None:
        node = next(node for node in self.nodes if node.port == port)
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)

    def url(self, port: int) -> str:
        return f"redis://{HOST}:{port}/0"

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive():
                node.process.terminate()
        for node in self.nodes:
            try:
                node.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()


# --- gunicorn ------------------------------------------------------------------------------------


class WebNode:
    def __init__(self, env: dict[str, str], log_path: Path):
        self.port, self.log_path = chaos.free_port(), log_path
        self.log_file = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "saas.wsgi", "--workers=1", "--worker-class=gthread"]
            + ["--threads=4", f"--bind={HOST}:{self.port}", "--timeout=60", "--graceful-timeout=5"],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self) -> None:
        def healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_path.read_text()}")
            return request(self.port, "/healthz")[0] == 200

        wait_for(healthy, f"gunicorn on {self.port} healthy")

    def tracebacks(self) -> int:
        self.log_file.flush()
        return self.log_path.read_text().count("Traceback")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log_file.close()


# --- requests ------------------------------------------------------------------------------------


def request(port: int, path: str, headers: dict | None = None) -> tuple[int, float, float]:
    """(status, started, ended) on the monotonic clock; status 0 when the
    connection failed or timed out."""
    connection = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT_SECONDS)
    started = time.monotonic()
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, started, time.monotonic()
    except OSError:
        return 0, started, time.monotonic()
    finally:
        connection.close()


class Client:
    """Every /api/v1/echo call the benchmark makes, so the 200s it was served
    are all counted against the units billed."""

    def __init__(self, key: str, ports: list[int]):
        self.headers = {"Authorization": f"Bearer {key}"}
        self.ports = ports
        self.samples: list[tuple[int, float, float]] = []
        self.lock = threading.Lock()

    def echo(self, turn: int) -> tuple[int, float, float]:
        sample = request(self.ports[turn % len(self.ports)], ECHO, self.headers)
        with self.lock:
            self.samples.append(sample)
        return sample

    def served(self) -> int:
        return sum(1 for status, _, _ in self.samples if status == 200)


def concurrent_burst(client: Client) -> Counter:
    """CONCURRENT requests released at once, spread over the nodes."""
    barrier = threading.Barrier(CONCURRENT)
    statuses: list[int] = []

    def one(turn: int) -> None:
        barrier.wait()
        statuses.append(client.echo(turn)[0])

    threads = [threading.Thread(target=one, args=(n,)) for n in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Counter(statuses)


class Load:
    def __init__(self, client: Client, threads: int = LOAD_THREADS):
        self.client, self.running = client, True
        self.samples: list[tuple[int, float, float]] = []
        self.threads = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(threads)]

    def _loop(self, number: int) -> None:
        turn = number
        while self.running:
            self.samples.append(self.client.echo(turn))
            turn += 1

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.running = False
        for thread in self.threads:
            thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)


# --- the benchmark -------------------------------------------------------------------------------


def prepare(env: dict[str, str]) -> tuple[str, int]:
    """Migrated database, default tiers, a new customer of quota QUOTA: its key and id."""
    chaos.DATABASE_URL = DATABASE_URL  # chaos.ensure_database creates the database it names
    chaos.ensure_database()
    chaos.manage(env, "migrate", "--noinput", "-v", "0")
    chaos.manage(env, "sync_tiers")
    return new_customer(env, QUOTA)


def neighbour(env: dict[str, str], cluster: RedisCluster, customer_id: int) -> tuple[str, int]:
    """Another customer, whose slot a master other than `customer_id`'s serves: its key and id."""
    owner = cluster.owner_of(f"{{c{customer_id}}}")
    for _ in range(10):
        key, other_id = new_customer(env, RAISED_QUOTA)
        if cluster.owner_of(f"{{c{other_id}}}") != owner:
            return key, other_id
    raise RuntimeError("no customer landed on another master in 10 tries")


def new_customer(env: dict[str, str], quota: int) -> tuple[str, int]:
    email = f"benchcluster-{time.strftime('%Y%m%d%H%M%S')}-{random.randrange(10**6)}@example.com"
    key = chaos.manage(env, "create_api_key", "--email", email, "--tier", "enterprise", "--name", "cluster")
    customer_id = chaos.manage(
        env,
        "shell",
        "-c",
        "from plans.models import Customer; "
        f"customers = Customer.objects.filter(user__email={email!r}); "
        f"assert customers.update(quota_override={quota}, burst_override={BURST}) == 1; "
        "print(customers.get().pk)",
    )
    return key.strip().splitlines()[-1], int(customer_id.strip().splitlines()[-1])


def raise_quota(env: dict[str, str], customer_id: int) -> None:
    """As the admin does: the new limit, then every process's key contexts invalidated."""
    chaos.manage(
        env,
        "shell",
        "-c",
        "from apikeys.context import customer_key_contexts, invalidate_key_contexts; "
        "from plans.models import Customer; "
        f"Customer.objects.filter(pk={customer_id}).update(quota_override={RAISED_QUOTA}); "
        f"invalidate_key_contexts(customer_key_contexts([{customer_id}]))",
    )


def context_tag(env: dict[str, str], key: str) -> str:
    """The hash tag of the key's context, version and rejection in Redis."""
    code = f"from apikeys.peppers import current_hash; print(current_hash({key!r}))"
    return "{k" + chaos.manage(env, "shell", "-c", code).strip().splitlines()[-1] + "}"


def billed_units(env: dict[str, str], customer_id: int) -> tuple[int, int]:
    """(units in PostgreSQL, units still pending in Redis) of the customer."""
    code = (
        "from django.db.models import Sum; from metering.models import UsageRecord; "
        "from metering.selectors import pending_units; "
        f"rows = UsageRecord.objects.filter(customer_id={customer_id}); "
        "ledger = rows.aggregate(t=Sum('count'))['t'] or 0; "
        f"print(ledger, sum(pending_units(customer_id={customer_id}).values()))"
    )
    ledger, pending = chaos.manage(env, "shell", "-c", code).strip().splitlines()[-1].split()
    return int(ledger), int(pending)


def failover(
    cluster: RedisCluster, client: Client, customer_id: int, context_tag: str, other_client: Client
) -> dict:
    load, other_load = Load(client), Load(other_client, NEIGHBOUR_THREADS)
    load.start()
    other_load.start()
    load_started = time.monotonic()
    try:
        time.sleep(STEADY_SECONDS)
        victim = cluster.owner_of(f"{{c{customer_id}}}")
        context_on_victim = cluster.owner_of(context_tag) == victim
        log(f"SIGKILL the master on {victim}, owner of the customer's slot")
        killed_at = time.monotonic()
        cluster.kill(victim)
        deadline = killed_at + FAILOVER_LIMIT_SECONDS
        promoted_at = serving_at = None
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = time.monotonic()
            if promoted_at is None and cluster.owner_of(f"{{c{customer_id}}}") not in (None, victim):
                promoted_at = now
            # Serving again: a 200 started after the replica's promotion was seen.
            if (
                promoted_at is not None
                and serving_at is None
                and any(s == 200 and started >= promoted_at for s, started, _ in list(load.samples))
            ):
                serving_at = now
            if serving_at is not None and now - serving_at >= SERVING_AGAIN_SECONDS:
                break
        else:
            raise RuntimeError(f"the API did not serve again within {FAILOVER_LIMIT_SECONDS:.0f} s")
    finally:
        load.stop()
        other_load.stop()
    after_kill = [sample for sample in load.samples if sample[2] >= killed_at]
    other_after_kill = [sample for sample in other_load.samples if sample[2] >= killed_at]
    first_failure = min((started for status, started, _ in after_kill if status != 200), default=None)
    unavailable = [sample for sample in after_kill if sample[0] == 503]
    span = (max(e for _, _, e in unavailable) - min(s for _, s, _ in unavailable)) if unavailable else 0.0
    # Serving again: the first 200 started after the last 503 did.
    last_503 = max((started for _, started, _ in unavailable), default=killed_at)
    first_200_after = min((s for status, s, _ in after_kill if status == 200 and s >= last_503), default=None)
    return {
        "requests": len(load.samples),
        "steady_rate": sum(1 for s, _, ended in load.samples if s == 200 and ended < killed_at)
        / (killed_at - load_started),
        "statuses": Counter(status for status, _, _ in load.samples),
        "after_kill": Counter(status for status, _, _ in after_kill),
        "503_span": span,
        "first_failure_after_kill": None if first_failure is None else max(0.0, first_failure - killed_at),
        "serving_again_after_kill": (first_200_after - killed_at) if first_200_after else 0.0,
        "promoted_after": (promoted_at - killed_at) if promoted_at else None,
        "context_on_victim": context_on_victim,
        "other_after_kill": Counter(status for status, _, _ in other_after_kill),
    }


def billing_error(delta: int) -> str:
    """Units billed minus 200s served, in words: <0 served but not billed, >0 billed twice."""
    return (
        f"WRONG: {abs(delta)} {'lost' if delta < 0 else 'doubled'}" if delta else "WRONG: units left pending"
    )


def print_table(rows: list[tuple[str, str, str]]) -> None:
    header = ("check", "figure", "verdict")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(3)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def main() -> None:
    for program in ("redis-server", "redis-cli"):
        if not shutil.which(program):
            sys.exit(f"make bench-cluster needs {program}")
    started = time.monotonic()
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as directory:
        directory = Path(directory)
        cluster = RedisCluster(directory)
        web_nodes: list[WebNode] = []
        try:
            cluster.start()
            masters = cluster.masters()
            log(f"Redis Cluster up: masters {masters}, replicas {cluster.replicas()}")
            env = {**chaos.environment(DATABASE_URL, cluster.url(masters[0])), "REDIS_CLUSTER": "true"}
            env["REDIS_REPLICA_ACKS"] = REPLICA_ACKS
            env["LOG_LEVEL"] = "WARNING"
            key, customer_id = prepare(env)
            for number in range(WEB_NODES):
                node_env = {**env, "REDIS_URL": cluster.url(masters[number % len(masters)])}
                web_nodes.append(WebNode(node_env, directory / f"gunicorn-{number}.log"))
            for node in web_nodes:
                node.wait_healthy()
            log(f"ready in {time.monotonic() - started:.0f} s: gunicorn on {[n.port for n in web_nodes]}")
            client = Client(key, [node.port for node in web_nodes])

            burst = concurrent_burst(client)
            log(f"{CONCURRENT} concurrent requests at quota {QUOTA}: {dict(sorted(burst.items()))}")

            raise_quota(env, customer_id)
            wait_for(lambda: client.echo(0)[0] == 200, "the raised quota admitted a request", 15)
            other_key, other_id = neighbour(env, cluster, customer_id)
            other_client = Client(other_key, [node.port for node in web_nodes])
            outcome = failover(cluster, client, customer_id, context_tag(env, key), other_client)
            log(f"failover: {dict(sorted(outcome['after_kill'].items()))} after the kill")

            # A process starting now needs a live seed node: the killed master
            # may be the one env names, and a client cannot start from it.
            env["REDIS_URL"] = cluster.url(cluster.masters()[0])
            log(chaos.manage(env, "flush_usage").strip())
            ledger, pending = billed_units(env, customer_id)
            served = client.served()
            other_ledger, other_pending = billed_units(env, other_id)
            all_statuses = Counter(status for status, _, _ in client.samples + other_client.samples)
            tracebacks = sum(node.tracebacks() for node in web_nodes)
        finally:
            for node in web_nodes:
                node.stop()
            cluster.stop()
    load_at_end = os.getloadavg()

    def counts(counter: Counter) -> str:
        return " ".join(f"{code}:{count}" for code, count in sorted(counter.items()))

    # Exactly the quota admitted; a 503 (Redis slower than its timeout on a
    # loaded machine: the check is cancelled, fail-closed) is not an admission.
    exact = burst.get(200, 0) == QUOTA and burst.get(429, 0) + burst.get(503, 0) == CONCURRENT - QUOTA
    first_failure = outcome["first_failure_after_kill"]
    rows = [
        (f"{CONCURRENT} concurrent, quota {QUOTA}, 3 nodes", counts(burst), "exact" if exact else "WRONG"),
        (
            f"failover load ({LOAD_THREADS} client threads)",
            f"{outcome['requests']} requests: {counts(outcome['statuses'])}",
            "",
        ),
        ("  before the kill", f"{outcome['steady_rate']:.0f} 200s/s", ""),
        ("  after the kill", counts(outcome["after_kill"]), ""),
        (
            f"  a customer on another master ({NEIGHBOUR_THREADS} threads)",
            counts(outcome["other_after_kill"]),
            "ok" if set(outcome["other_after_kill"]) == {200} else "503s",
        ),
        (
            "  the key's context on the killed master",
            "yes" if outcome["context_on_victim"] else "no",
            "",
        ),
        (
            "  replica promoted",
            f"{outcome['promoted_after']:.1f} s after the kill" if outcome["promoted_after"] else "-",
            "",
        ),
        (
            "  503s lasted",
            f"{outcome['503_span']:.1f} s"
            + (f" (first failure {first_failure:.1f} s after the kill)" if first_failure is not None else ""),
            "",
        ),
        ("  serving again", f"{outcome['serving_again_after_kill']:.1f} s after the kill", ""),
        (
            "500s (whole run)",
            f"{all_statuses.get(500, 0)} ({tracebacks} tracebacks in the logs)",
            "ok" if not all_statuses.get(500) else "WRONG",
        ),
        (
            "units in PostgreSQL vs 200s served",
            f"{ledger} vs {served} ({pending} still pending in Redis)",
            "equal" if ledger == served and pending == 0 else billing_error(ledger + pending - served),
        ),
        (
            "  the other customer's",
            f"{other_ledger} vs {other_client.served()} ({other_pending} still pending in Redis)",
            "equal"
            if other_ledger == other_client.served() and other_pending == 0
            else billing_error(other_ledger + other_pending - other_client.served()),
        ),
    ]
    print(
        f"make bench-cluster: Redis Cluster {MASTERS} masters + {REPLICAS} replicas (AOF, node timeout 2 s), "
        f"{WEB_NODES} gunicorn nodes x 1 worker x 4 threads, REDIS_REPLICA_ACKS={REPLICA_ACKS}"
    )
    print_table(rows)
    print(
        f"({time.monotonic() - started:.0f} s; load average {load_at_start[0]:.1f} at the start, "
        f"{load_at_end[0]:.1f} at the end, {os.cpu_count()} cores)"
    )
    other_served = other_client.served()
    billed_exactly = ledger == served and other_ledger == other_served and not pending + other_pending
    if not exact or all_statuses.get(500) or not billed_exactly:
        sys.exit(1)


if __name__ == "__main__":
    main()
