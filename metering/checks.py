"""System checks: the Redis holding usage not yet flushed must persist it,
and REDIS_CLUSTER must say whether REDIS_URL names a Redis Cluster node.

Billed units wait in Redis for up to USAGE_FLUSH_SECONDS before the flush
moves them to PostgreSQL; a restart of a Redis that persists nothing loses
them, and the quota counters it re-seeds start low. Checked with DEBUG off
only: a laptop's Redis need not persist.
"""

from urllib.parse import urlparse

import redis
from django.conf import settings
from django.core import checks
from django_redis import get_redis_connection
from redis.exceptions import RedisError, ResponseError

from core.redis_cluster import REDIS_UNAVAILABLE, is_cluster

HINT = "Turn on AOF with fsync every second: appendonly yes, appendfsync everysec (see README)."

NO_PERSISTENCE = checks.Warning(
    "Redis persists nothing (no AOF, no RDB): a restart loses the usage not yet flushed.",
    hint=HINT,
    id="metering.W001",
)
CANNOT_TELL = checks.Warning(
    "Redis refuses CONFIG and its AOF is off: RDB snapshots, if any, cannot be checked.",
    hint=HINT,
    id="metering.W002",
)
UNREACHABLE = checks.Warning(
    "Redis does not answer: its persistence cannot be checked.", hint=HINT, id="metering.W003"
)


def persistence_warnings(client) -> list[checks.CheckMessage]:
    """W001 if the Redis at `client` has neither AOF nor RDB; W002 if it refuses
    CONFIG (managed Redis) and INFO shows no AOF; W003 if it does not answer.
    On Redis Cluster, each primary's: CONFIG goes to one node otherwise."""
    try:
        if is_cluster(client):
            found = [_persistence_warnings(node.redis_connection) for node in client.get_primaries()]
            by_id = {warning.id: warning for warnings in found for warning in warnings}
            return [by_id[warning_id] for warning_id in sorted(by_id)]
        return _persistence_warnings(client)
    except REDIS_UNAVAILABLE + (RedisError,):  # a check must not crash manage.py
        return [UNREACHABLE]


def _persistence_warnings(client) -> list[checks.CheckMessage]:
    try:
        config = {**client.config_get("appendonly"), **client.config_get("save")}
    except ResponseError:  # CONFIG refused or renamed, as managed Redis services do
        return [] if client.info("persistence").get("aof_enabled") else [CANNOT_TELL]
    return [] if config.get("appendonly") == "yes" or config.get("save") else [NO_PERSISTENCE]


def redis_persistence(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """The registered check (metering.apps): the project's Redis, with DEBUG off."""
    if settings.DEBUG or not settings.REDIS_URL:
        return []
    return persistence_warnings(get_redis_connection("default"))


NOT_CONFIGURED_AS_CLUSTER = checks.Error(
    "REDIS_URL names a node of a Redis Cluster, but REDIS_CLUSTER is not true: "
    "every command for a key on another node fails (MOVED).",
    hint="Set REDIS_CLUSTER=true.",
    id="metering.E001",
)
NOT_A_CLUSTER = checks.Error(
    "REDIS_CLUSTER is true, but REDIS_URL names a Redis without cluster mode.",
    hint="Unset REDIS_CLUSTER, or point REDIS_URL at a node of the cluster.",
    id="metering.E002",
)


def layout_errors(url: str, *, cluster: bool) -> list[checks.CheckMessage]:
    """E001 or E002 when the Redis at `url` is a cluster node and `cluster` is
    false, or the reverse; nothing when it does not answer (W003 says so)."""
    # A plain client on database 0: a cluster node refuses SELECT of any other.
    probe = redis.Redis.from_url(
        urlparse(url)._replace(path="/0").geturl(),
        socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
    )
    try:
        enabled = bool(probe.info("cluster").get("cluster_enabled"))
    except RedisError:
        return []
    finally:
        probe.close()
    if enabled and not cluster:
        return [NOT_CONFIGURED_AS_CLUSTER]
    if cluster and not enabled:
        return [NOT_A_CLUSTER]
    return []


def redis_layout(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """The registered check (metering.apps), with DEBUG on or off. Behind
    Sentinel, REDIS_URL names no server: the Sentinels found a master."""
    if not settings.REDIS_URL or settings.REDIS_SENTINELS:
        return []
    return layout_errors(settings.REDIS_URL, cluster=settings.REDIS_CLUSTER)
