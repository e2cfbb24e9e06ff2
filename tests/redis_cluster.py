"""A real local Redis Cluster for the tests: 3 masters, no replicas.

Started once per test session from redis-server on free loopback ports below
55535 (each node's cluster bus listens on its port + 10000), joined with
`redis-cli --cluster create`, in a temporary directory, stopped at the end.

`redis_layout` runs a test once on the single Redis of REDIS_URL and once on
the cluster, with the default cache (and so the limiter, the key-context
cache, the flush and cost samples) pointed at the layout.
"""

import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django_redis import get_redis_connection
from redis.cluster import RedisCluster

from core.breaker import breakers_reset

MASTERS = 3
BUS_OFFSET = 10_000
HIGHEST_PORT = 55_535 - 1
STARTUP_SECONDS = 30


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` ports free on 127.0.0.1 whose bus ports (+10000) are free too."""
    ports: list[int] = []
    candidates = random.sample(range(20_000, HIGHEST_PORT - BUS_OFFSET), 2_000)
    for port in candidates:
        if port in ports or port + BUS_OFFSET in ports:
            continue
        if _port_free(port) and _port_free(port + BUS_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no free ports for a local Redis Cluster")


@dataclass
class LocalCluster:
    ports: list[int]
    directory: Path
    processes: list[subprocess.Popen]

    @property
    def url(self) -> str:
        """One node's URL: the client discovers the others."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url)

    def kill(self, index: int) -> None:
        """SIGKILL one node, as a crash."""
        self.processes[index].kill()
        self.processes[index].wait()

    def wait_for_state(self, state: str, *, on: int) -> None:
        """Until node `on` reports `cluster_state:<state>` (a failure is
        detected after the node timeout, 2 s here)."""
        port = self.ports[on]
        _wait_for(lambda: f"cluster_state:{state}" in _cluster_info(port), f"node {port} never said {state}")

    def stop(self) -> None:
        stop_servers(self.processes, self.directory)


def stop_servers(processes, directory: Path) -> None:
    """Stop redis-server processes (those still running) and remove their directory."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(directory, ignore_errors=True)


def _start_node(port: int, directory: Path) -> subprocess.Popen:
    node_dir = directory / str(port)
    node_dir.mkdir()
    arguments = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "2000",
        "--dir", str(node_dir),
        "--save", "",
        "--appendonly", "no",
        "--enable-debug-command", "local",  # DEBUG SLEEP: a node that stalls
    ]  # fmt: skip
    log = open(node_dir / "redis.log", "wb")  # noqa: SIM115 (the process owns it)
    return subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(check, what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"the local Redis Cluster: {what} within {STARTUP_SECONDS} s")


def _answers(port: int) -> bool:
    result = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
    return result.stdout.strip() == "PONG"


def _cluster_info(port: int) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True
    ).stdout


def _cluster_ok(port: int) -> bool:
    return "cluster_state:ok" in _cluster_info(port)


def _synced(port: int) -> bool:
    """A master, or a replica whose link to its master is up."""
    command = ["redis-cli", "-p", str(port), "info", "replication"]
    info = subprocess.run(command, capture_output=True, text=True).stdout
    return "role:master" in info or "master_link_status:up" in info


def start_cluster(replicas_per_master: int = 0) -> LocalCluster:
    """MASTERS masters, each with `replicas_per_master` replicas, all synced."""
    directory = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
    ports = free_ports(MASTERS * (1 + replicas_per_master))
    cluster = LocalCluster(ports, directory, [_start_node(port, directory) for port in ports])
    try:
        for port in ports:
            _wait_for(lambda port=port: _answers(port), f"node {port} did not answer")
        nodes = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", str(replicas_per_master)]
            + ["--cluster-yes"],
            check=True,
            capture_output=True,
        )
        for port in ports:
            _wait_for(lambda port=port: _cluster_ok(port), f"node {port} did not report cluster_state:ok")
        for port in ports:
            _wait_for(lambda port=port: _synced(port), f"node {port} did not sync with its master")
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def redis_cluster():
    cluster = start_cluster()
    yield cluster
    cluster.stop()


def cluster_caches(url: str) -> dict:
    """The default cache as saas.settings configures it for REDIS_CLUSTER=true."""
    default = dict(settings.CACHES["default"])
    default["LOCATION"] = url
    default["OPTIONS"] = {
        **default["OPTIONS"],
        "CONNECTION_FACTORY": "core.redis_cluster.ClusterConnectionFactory",
    }
    return {**settings.CACHES, "default": default}


def use_cluster(settings, cluster: LocalCluster) -> None:
    """Point the default cache (and so everything on it) at `cluster`, as
    saas.settings configures REDIS_CLUSTER=true."""
    settings.REDIS_URL = cluster.url
    settings.REDIS_CLUSTER = True
    settings.CACHES = cluster_caches(cluster.url)
    breakers_reset()


@pytest.fixture
def on_redis_cluster(redis_cluster, settings):
    """The default cache on the session's Redis Cluster, emptied first."""
    use_cluster(settings, redis_cluster)
    get_redis_connection("default").flushall()
    yield redis_cluster
    breakers_reset()


@pytest.fixture
def private_redis_cluster(settings):
    """A cluster of the test's own, whose nodes it may stop, with the default
    cache on it."""
    cluster = start_cluster()
    use_cluster(settings, cluster)
    yield cluster
    cluster.stop()
    breakers_reset()


@pytest.fixture
def replicated_redis_cluster(settings):
    """A cluster of the test's own whose masters have two replicas each (one
    left after a failover), with the default cache on it."""
    cluster = start_cluster(replicas_per_master=2)
    use_cluster(settings, cluster)
    yield cluster
    cluster.stop()
    breakers_reset()


@pytest.fixture(params=["single Redis", "Redis Cluster"])
def redis_layout(request):
    """The test once on the single Redis of REDIS_URL, once on a 3-master
    Redis Cluster. Returns the layout's name."""
    if request.param == "Redis Cluster":
        request.getfixturevalue("on_redis_cluster")
    return request.param
