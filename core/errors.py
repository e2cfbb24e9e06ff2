"""One error shape for the whole API: {"error": "<code>", "detail": "<message>"}.

Apps raise `AppError` subclasses (or DRF exceptions); `json_exception_handler`
renders both, keeping the headers DRF sets (WWW-Authenticate, Retry-After),
and turns a database out of reach into `503 database_unavailable`, Redis out
of reach (in a view, after the limiter let the request in) into `503
redis_unavailable`.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404
from django.utils.log import log_response
from rest_framework import exceptions, status
from rest_framework.response import Response

from .breaker import cache_breaker
from .redis_cluster import REDIS_UNAVAILABLE

logger = logging.getLogger(__name__)


class AppError(Exception):
    """A client-facing error with a stable machine-readable code."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"
    detail = "The request is not valid."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.detail = detail or self.detail
        self.code = code or self.code
        self.extra = extra or {}  # more fields for the JSON body
        self.headers = headers or {}
        super().__init__(self.detail)


# What django.db raises when the database cannot be reached or gave up (a
# timeout, a closed connection); any other DatabaseError is a bug, a 500.
DATABASE_UNREACHABLE_ERRORS = (OperationalError, InterfaceError)


class DatabaseUnavailable(AppError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "database_unavailable"
    detail = "The database cannot be reached right now. Retry shortly."

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"Retry-After": str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)})


REDIS_UNREACHABLE_ERRORS = REDIS_UNAVAILABLE


class RedisUnavailable(AppError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "redis_unavailable"
    detail = "Usage data cannot be read right now. Retry shortly."

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"Retry-After": str(settings.RATE_LIMIT_UNAVAILABLE_RETRY_AFTER)})


def error_body(code: str, detail: str, **extra) -> dict:
    return {"error": code, "detail": detail, **extra}


def _first_message(detail) -> str:
    """The first human-readable message in a (possibly nested) DRF detail."""
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()))
        message = _first_message(value)
        return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid input."
    return str(detail)


def json_exception_handler(exc, context):
    # Imported here: rest_framework.views loads the permission and throttle
    # classes from settings, and those import this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DATABASE_UNREACHABLE_ERRORS):
        logger.debug("database unreachable: %s", exc)  # the outage is logged once (core.breaker)
        exc = DatabaseUnavailable()
    elif isinstance(exc, REDIS_UNREACHABLE_ERRORS):
        breaker = cache_breaker()
        if breaker is not None:
            breaker.failed(exc)  # the next requests fail fast, and the outage is logged once
        exc = RedisUnavailable()
    if isinstance(exc, AppError):
        response = Response(
            error_body(exc.code, exc.detail, **exc.extra), status=exc.status_code, headers=exc.headers
        )
        if exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
            # A dependency is down: that is logged once as it starts and ends
            # (core.breaker), not as one django.request error per refused request.
            response._has_been_logged = True
        return response

    # Convert Django's own exceptions first so they get the same JSON shape.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not a client error: let Django's 500 handling take it

    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", _first_message(exc.detail), fields=exc.detail)
    else:
        code = exc.get_codes() if isinstance(exc.detail, str) else exc.default_code
        response.data = error_body(str(code), _first_message(exc.detail))
    _log_quietly(exc, response, context.get("request"))
    return response


def _log_quietly(exc, response, request) -> None:
    """Log a 401 (or an error whose class sets `log_level`) at debug level.

    Django logs every 4xx as a warning; a bad key is the client's mistake, and
    a flood of them would flood the log. Logged here, the response is marked as
    logged and Django leaves it alone.
    """
    level = getattr(exc, "log_level", "debug" if response.status_code == 401 else None)
    if level is None or request is None:
        return
    log_response(
        "%s: %s", response.reason_phrase, request.path, response=response, request=request, level=level
    )
