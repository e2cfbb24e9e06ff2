"""Health checks of the services a request depends on."""

import logging

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.exception("health check: database unreachable")
        return "unreachable"
    return "ok"


def check_redis() -> str:
    if not settings.REDIS_URL:
        return "not configured"
    from django_redis import get_redis_connection

    try:
        get_redis_connection("default").ping()
    except Exception:
        logger.exception("health check: redis unreachable")
        return "unreachable"
    return "ok"


def run_checks() -> tuple[bool, dict[str, str]]:
    """(healthy, status of each dependency)."""
    checks = {"database": check_database(), "redis": check_redis()}
    healthy = all(value in ("ok", "not configured") for value in checks.values())
    return healthy, checks
