"""A real local Redis Sentinel layout for the tests: a master, its replica and
one Sentinel (quorum 1), from redis-server on free loopback ports, in a
temporary directory, stopped by the fixture.

`on_redis_sentinel` points the default cache (and so the limiter, the
key-context cache, the flush and cost samples) at it, as saas.settings does
for REDIS_SENTINELS; the test may fail the master over or kill it.
"""

import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from django.conf import settings

from core.breaker import breakers_reset

from .redis_cluster import free_ports, stop_servers

STARTUP_SECONDS = 30


@dataclass
class LocalSentinel:
    master_port: int
    replica_port: int
    sentinel_port: int
    directory: Path
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def service(self) -> str:
        # Its own name per layout: django-redis keeps its pools by URL for the
        # process, and a pool keeps asking the Sentinels it was made with.
        return f"tiered{self.sentinel_port}"

    @property
    def url(self) -> str:
        return f"redis://{self.service}/0"

    def sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel_port, socket_timeout=2)

    def master_address(self) -> tuple[str, int]:
        host, port = self.sentinel().sentinel_get_master_addr_by_name(self.service)
        return host, int(port)

    def master(self) -> redis.Redis:
        return redis.Redis(*self.master_address(), socket_timeout=2)

    def fail_over(self) -> int:
        """SENTINEL FAILOVER: the replica is promoted, the old master demoted to
        its replica (a planned failover). Returns the new master's port."""
        before = self.master_address()[1]
        self.sentinel().execute_command("SENTINEL", "FAILOVER", self.service)
        _wait_for(lambda: self.master_address()[1] != before, "the Sentinel promoted the replica")
        new = self.master_address()[1]
        _wait_for(lambda: _role(new) == "master", "the new master took the role")
        # Until the old master is demoted it still takes writes, lost when it
        # then follows the new one: Sentinel's window, not the app's.
        _wait_for(lambda: _role(before) == "slave", "the old master was demoted")
        return new

    def wait_replicated(self) -> None:
        """Until the replica has every write the master took."""
        master, replica = self.master_address()[1], (set(self.ports) - {self.master_address()[1]}).pop()

        def caught_up():
            offset = redis.Redis(port=master).info("replication")["master_repl_offset"]
            return redis.Redis(port=replica).info("replication")["slave_repl_offset"] >= offset

        _wait_for(caught_up, "the replica caught up")

    @property
    def ports(self) -> tuple[int, int]:
        return self.master_port, self.replica_port

    def kill_master(self) -> int:
        """SIGKILL the master (an unplanned failover). Returns its port."""
        port = self.master_address()[1]
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait()
        return port

    def stop(self) -> None:
        stop_servers(self.processes.values(), self.directory)


def _start(port: int, directory: Path, *arguments: str) -> subprocess.Popen:
    node_dir = directory / str(port)
    node_dir.mkdir(exist_ok=True)
    log = open(node_dir / "redis.log", "wb")  # noqa: SIM115 (the process owns it)
    return subprocess.Popen(["redis-server", *arguments], cwd=node_dir, stdout=log, stderr=subprocess.STDOUT)


def _server_arguments(port: int, directory: Path) -> list[str]:
    return ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory / str(port)), "--save", ""]


def _wait_for(check, what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"local Redis Sentinel: {what} within {STARTUP_SECONDS} s")


def _role(port: int) -> str:
    return redis.Redis(port=port, socket_timeout=1).info("replication")["role"]


def start_sentinel() -> LocalSentinel:
    directory = Path(tempfile.mkdtemp(prefix="redis-sentinel-"))
    master, replica, sentinel_port = free_ports(3)
    layout = LocalSentinel(master, replica, sentinel_port, directory)
    try:
        layout.processes[master] = _start(master, directory, *_server_arguments(master, directory))
        layout.processes[replica] = _start(
            replica,
            directory,
            *_server_arguments(replica, directory),
            "--replicaof",
            "127.0.0.1",
            str(master),
        )
        _wait_for(
            lambda: redis.Redis(port=replica).info("replication").get("master_link_status") == "up",
            "the replica followed its master",
        )
        config = directory / "sentinel.conf"  # Sentinel rewrites it: a file of its own
        config.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {layout.service} 127.0.0.1 {master} 1\n"
            f"sentinel down-after-milliseconds {layout.service} 1000\n"
            f"sentinel failover-timeout {layout.service} 5000\n"
        )
        layout.processes[sentinel_port] = _start(sentinel_port, directory, str(config), "--sentinel")
        _wait_for(lambda: layout.master_address()[1] == master, "the Sentinel knew the master")
        _wait_for(
            lambda: int(layout.sentinel().sentinel_master(layout.service)["num-slaves"]) == 1,
            "the Sentinel found the replica",
        )
    except BaseException:
        layout.stop()
        raise
    return layout


def sentinel_caches(layout: LocalSentinel) -> dict:
    """The default cache as saas.settings configures it for REDIS_SENTINELS."""
    default = dict(settings.CACHES["default"])
    default["LOCATION"] = layout.url
    default["OPTIONS"] = {
        **default["OPTIONS"],
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": [("127.0.0.1", layout.sentinel_port)],
        "SENTINEL_KWARGS": {"socket_timeout": 0.2, "socket_connect_timeout": 0.2},
    }
    return {**settings.CACHES, "default": default}


@pytest.fixture
def on_redis_sentinel(settings):
    """A master, a replica and a Sentinel of the test's own, with the default
    cache on them."""
    layout = start_sentinel()
    settings.REDIS_URL = layout.url
    settings.REDIS_SENTINELS = [("127.0.0.1", layout.sentinel_port)]
    settings.CACHES = sentinel_caches(layout)
    breakers_reset()
    yield layout
    layout.stop()
    breakers_reset()
