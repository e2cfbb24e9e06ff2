"""Health checks of the services a request depends on."""

import logging

from django.conf import settings
from django.db import connection
from django_redis import get_redis_connection

from core.breaker import redis_breaker

logger = logging.getLogger(__name__)


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        logger.debug("health check: database unreachable: %s", error)
        return "unreachable"
    return "ok"


def check_redis() -> str:
    if not settings.REDIS_URL:
        return "not configured"
    try:
        client = get_redis_connection("default")
    except Exception as error:
        logger.warning("health check: no Redis client: %s", error)
        return "unreachable"
    breaker = redis_breaker(client)  # down: answered at once, and logged once (core.breaker)
    if not breaker.allow():
        return "unreachable"
    try:
        client.ping()
    except Exception as error:
        breaker.failed(error)
        return "unreachable"
    breaker.succeeded()
    return "ok"


def run_checks() -> tuple[bool, dict[str, str]]:
    """(healthy, status of each dependency)."""
    checks = {"database": check_database(), "redis": check_redis()}
    healthy = all(value in ("ok", "not configured") for value in checks.values())
    return healthy, checks
