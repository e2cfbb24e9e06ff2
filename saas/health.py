"""Health checks of the services a request depends on."""

import logging

from django.conf import settings
from django.db import connection
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from core.breaker import redis_breaker
from core.redis_cluster import is_cluster

logger = logging.getLogger(__name__)

CLUSTER_SLOTS = 16384


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        logger.debug("health check: database unreachable: %s", error)
        return "unreachable"
    return "ok"


def check_redis() -> tuple[str, dict | None]:
    """Redis's status, and on Redis Cluster the cluster's state (else None)."""
    if not settings.REDIS_URL:
        return "not configured", None
    try:
        client = get_redis_connection("default")
    except Exception as error:
        logger.warning("health check: no Redis client: %s", error)
        return "unreachable", None
    breaker = redis_breaker(client)  # down: answered at once, and logged once (core.breaker)
    if not breaker.allow():
        return "unreachable", None
    try:
        if is_cluster(client):
            state = redis_cluster_state(client)
        else:
            client.ping()
    except Exception as error:
        breaker.failed(error)
        return "unreachable", None
    breaker.succeeded()
    if not is_cluster(client):
        return "ok", None
    whole = state["state"] == "ok" and state["slots_ok"] == CLUSTER_SLOTS
    return ("ok" if whole and state["primaries_answering"] == state["primaries"] else "degraded"), state


def redis_cluster_state(client) -> dict:
    """The cluster as this process sees it: CLUSTER INFO's state and slots
    served (from a primary that answers), and how many primaries answer a PING. A primary
    that does not answer is not the breaker's business: the customers of the
    other primaries are still served."""
    primaries = client.get_primaries()
    answering = [node for node in primaries if _answers(node)]
    if not answering:
        raise RedisConnectionError(f"none of the cluster's {len(primaries)} primaries answers")
    info = client.cluster_info(target_nodes=answering[0])
    return {
        "state": info["cluster_state"],
        "slots_ok": int(info["cluster_slots_ok"]),
        "primaries": len(primaries),
        "primaries_answering": len(answering),
    }


def _answers(node) -> bool:
    try:
        return bool(node.redis_connection.ping())  # that node only, within its socket timeout
    except RedisError:
        return False


def run_checks() -> tuple[bool, dict]:
    """(healthy, status of each dependency; on Redis Cluster also its state)."""
    redis_status, cluster = check_redis()
    checks = {"database": check_database(), "redis": redis_status}
    healthy = all(value in ("ok", "not configured") for value in checks.values())
    if cluster is not None:
        checks["redis_cluster"] = cluster
    return healthy, checks
