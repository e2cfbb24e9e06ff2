"""Idempotency-Key, as in Stripe's API and the IETF httpapi idempotency-key
draft: a client may send a request again, under the same key, without it
running or being billed twice.

The key belongs to the customer (any of their API keys) and is bound to the
first request's fingerprint: method, path, query string as sent, and the
SHA-256 of the body. For 24 hours after that request answered 2xx:

- the same request again gets the stored response (status, body, content
  type) with `Idempotent-Replayed: true` and the rate limit headers of now,
  without running the view, unbilled, counted against the burst only;
- another request under the key gets 422 `idempotency_key_reused`, not served.

While the first request runs, the same key gets 409 `idempotency_key_in_use`
with Retry-After. A first request that failed (not 2xx) keeps nothing: the
next one runs, and is billed once if it succeeds. A response body over
settings.IDEMPOTENCY_MAX_STORED_BYTES (or a streamed one) is served and billed but not kept: a
repeat then gets 409 `idempotency_response_not_stored`, never a second run.
A key is used only where a request can be billed; the usage API and OPTIONS
ignore it.
"""

import hashlib
import logging
import math
import secrets
from dataclasses import replace

from django.conf import settings
from django.http import HttpResponse
from rest_framework import status

from core.errors import AppError

from .keys import idempotency_record
from .limiter import Claim, ClaimedKey, ClaimOutcome, Decision, LimiterUnavailable, get_limiter
from .usage import settle

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"


class IdempotencyKeyInvalid(AppError):
    code = "idempotency_key_invalid"
    detail = f"An Idempotency-Key is at most {MAX_KEY_LENGTH} characters."


class IdempotencyKeyReused(AppError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "idempotency_key_reused"
    detail = "This Idempotency-Key was used for a different request; use a new key."


class IdempotencyKeyInUse(AppError):
    status_code = status.HTTP_409_CONFLICT
    code = "idempotency_key_in_use"
    detail = "A request with this Idempotency-Key is still running; retry shortly."


class IdempotentResponseNotStored(AppError):
    status_code = status.HTTP_409_CONFLICT
    code = "idempotency_response_not_stored"

    def __init__(self):
        super().__init__(
            "The request with this Idempotency-Key succeeded, but its response (over "
            f"{settings.IDEMPOTENCY_MAX_STORED_BYTES} bytes) was not kept. Use a new key to run it again."
        )


class Replayed(AppError):
    """Raised by the throttle so the view does not run; the middleware then
    answers with the stored response instead of this error's."""

    status_code = status.HTTP_200_OK
    code = "replayed"


def fingerprint(request) -> str:
    """Method, path, query string as sent, and the body's digest (before the
    view: the body is still unread)."""
    django_request = request._request
    body = hashlib.sha256(django_request.body).hexdigest()
    parts = (request.method, django_request.path, django_request.META.get("QUERY_STRING", ""), body)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def claim(request, customer_id: int, key: str, now_ms: int) -> tuple[Claim, ClaimedKey]:
    """Claim `key` for this request, or raise what it already holds against it.
    Returns the claim (CLAIMED, or STORED for a replay) and what settles it."""
    if len(key) > MAX_KEY_LENGTH:
        raise IdempotencyKeyInvalid()
    claimed = ClaimedKey(record=idempotency_record(customer_id, key), token=secrets.token_hex(8))
    found = get_limiter().claim(
        claimed.record, fingerprint=fingerprint(request), token=claimed.token, now_ms=now_ms
    )
    if found.outcome == ClaimOutcome.REUSED:
        raise IdempotencyKeyReused()
    if found.outcome == ClaimOutcome.IN_USE:
        retry = str(max(1, math.ceil(found.retry_after_ms / 1000)))
        raise IdempotencyKeyInUse(headers={"Retry-After": retry})
    if found.outcome == ClaimOutcome.NOT_STORED:
        raise IdempotentResponseNotStored()
    return found, claimed


def release(decision: Decision, claimed: ClaimedKey, field: str) -> None:
    """Free a claim whose request was refused before its view ran."""
    try:
        settle(decision, billed_at_check=False, billable=False, field=field, cost=0, claimed=claimed)
    except LimiterUnavailable:
        logger.warning("could not release an Idempotency-Key; it lapses on its own", exc_info=True)


def kept(claimed: ClaimedKey, response) -> ClaimedKey:
    """The claim with what to keep of a successful response, if it fits."""
    if getattr(response, "streaming", False) or len(response.content) > settings.IDEMPOTENCY_MAX_STORED_BYTES:
        return claimed
    return replace(
        claimed,
        stored=True,
        status=response.status_code,
        content_type=response.get("Content-Type", ""),
        body=response.content,
    )


def replayed_response(stored: Claim) -> HttpResponse:
    response = HttpResponse(stored.body, status=stored.status, content_type=stored.content_type or None)
    response[REPLAYED_HEADER] = "true"
    return response
