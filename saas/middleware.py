"""A database or Redis out of reach is a 503 for every page and endpoint, never a 500."""

import logging

from core.breaker import cache_breaker
from core.errors import DATABASE_UNREACHABLE_ERRORS, REDIS_UNREACHABLE_ERRORS

from .views import database_unavailable

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    """Answers 503 with Retry-After when a view (or its template) cannot reach
    the database. API views never get here: DRF's exception handler
    (core.errors) answers them in JSON first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, REDIS_UNREACHABLE_ERRORS):
            breaker = cache_breaker()
            if breaker is not None:
                breaker.failed(exception)  # logged once per outage
        elif not isinstance(exception, DATABASE_UNREACHABLE_ERRORS):
            return None
        # Per request at debug only: the outage is logged as it starts and ends (core.breaker).
        logger.debug("database unreachable (%s): %s", request.path, exception)
        return database_unavailable(request)
