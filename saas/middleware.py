"""Pages that answer an error never answer a blank or a 500: a database or Redis
out of reach is a 503 for every page and endpoint, and a wrong method a 405 page."""

import logging

from django.http import HttpResponseNotAllowed

from core.breaker import cache_breaker
from core.errors import DATABASE_UNREACHABLE_ERRORS, REDIS_UNREACHABLE_ERRORS

from .views import database_unavailable, method_not_allowed

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


class MethodNotAllowedPageMiddleware:
    """Gives Django's bodiless 405 (`require_POST`, `require_safe`, a class-based
    view's `http_method_not_allowed`) a page, or the JSON error body when the
    client wants JSON. DRF's own 405s are not `HttpResponseNotAllowed` and keep
    their JSON body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        try:
            page = method_not_allowed(request, allowed=response["Allow"])
        except DATABASE_UNREACHABLE_ERRORS:
            # The page's layout reads the session and the user; a view's own
            # errors are caught by DatabaseUnavailableMiddleware, this one is not.
            return database_unavailable(request)
        # Django logs the refusal once, from the decorator or as the response
        # leaves; the page carries on whichever the bodiless response had.
        page._has_been_logged = getattr(response, "_has_been_logged", False)
        return page
