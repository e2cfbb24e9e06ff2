"""The OpenAPI schema's error responses, in one place for every API view.

`DocumentedAutoSchema` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) adds to each
operation every error it can answer, each with the project's one error body
(core.errors.error_body, the `Error` component) and the headers that matter.
What an operation can answer is read from its view, not written per view:

1. its authentication, permission and throttle classes (a key refused, a
   suspended account, a scope missing, a limit reached, the limiter down);
2. whether it can be billed (quota refusals and the Idempotency-Key answers);
3. the view's own `raises`: the errors of its parameters and its work;
4. what any API view can answer: 406 for an Accept it cannot serve, 503 with
   the database or Redis out of reach (core.errors).

A new view or class is documented by what it declares; a class this module
does not know adds nothing, and tests/api/test_schema.py names every code.
"""

from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions

from apikeys.authentication import APIKeyAuthentication
from apikeys.context import ContextUnavailable
from apikeys.exceptions import (
    ExpiredKey,
    InsufficientScope,
    MalformedKey,
    MissingKey,
    RevokedKey,
    TooManyFailedAuthentications,
    UnknownKey,
)
from apikeys.permissions import HasAPIKeyScope
from billing.permissions import BillingInGoodStanding, PaymentRequired
from core.errors import AppError, DatabaseUnavailable, RedisUnavailable
from metering.idempotency import (
    REPLAYED_HEADER,
    IdempotencyKeyInUse,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    IdempotentResponseNotStored,
)
from metering.schema import MeteredAutoSchema
from metering.throttling import LimiterDown, TierThrottle
from metering.usage import UNBILLED_METHODS


@dataclass(frozen=True)
class DocumentedError:
    status: int
    code: str
    meaning: str


MEANINGS = {
    exceptions.ValidationError: "A parameter is not valid: `detail` and `fields` say which and why.",
}


def documented(error: type[Exception], meaning: str | None = None) -> DocumentedError:
    """An AppError subclass or a DRF exception, by its status, code and message."""
    meaning = meaning or MEANINGS.get(error)
    if issubclass(error, AppError):
        return DocumentedError(error.status_code, error.code, meaning or error.detail)
    return DocumentedError(error.status_code, error.default_code, meaning or str(error.default_detail))


def _rate_limited(code: str, meaning: str) -> DocumentedError:
    # metering.throttling.rate_limited_error picks one of these codes per refusal.
    return DocumentedError(429, code, meaning)


BURST_LIMIT = _rate_limited("burst_limit_exceeded", "More requests in one second than the tier's burst.")
QUOTA_REFUSALS = (
    _rate_limited("quota_exceeded", "The tier's quota for this period is used up."),
    _rate_limited("spending_cap_reached", "The overage spending cap is reached; raise it on the dashboard."),
)
IDEMPOTENCY_ERRORS = (
    documented(IdempotencyKeyInvalid),
    documented(
        IdempotencyKeyInUse, "A request under this Idempotency-Key is still running (see Retry-After)."
    ),
    documented(IdempotentResponseNotStored, "Its response was too large to keep: use a new key."),
    documented(IdempotencyKeyReused),
)
AUTHENTICATION_ERRORS = {
    APIKeyAuthentication: (
        documented(MalformedKey),
        documented(UnknownKey),
        documented(RevokedKey),
        documented(ExpiredKey),
        documented(TooManyFailedAuthentications, "Too many requests with a bad API key from your address."),
        documented(ContextUnavailable),
    ),
}
PERMISSION_ERRORS = {
    HasAPIKeyScope: (documented(MissingKey), documented(InsufficientScope)),
    BillingInGoodStanding: (documented(PaymentRequired),),
}
# Any API view: content negotiation runs first, and core.errors turns an
# unreachable database or Redis into 503s.
EVERY_VIEW_ERRORS = (
    documented(exceptions.NotAcceptable, "The Accept header asks for something other than JSON."),
    documented(DatabaseUnavailable),
    documented(RedisUnavailable),
)

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error of the API has this body; the status and `error` say what happened.",
    "properties": {
        "error": {
            "type": "string",
            "description": "A stable machine-readable code.",
            "example": "invalid",
        },
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "fields": {
            "type": "object",
            "additionalProperties": True,
            "description": "`invalid` only: the messages for each parameter.",
        },
        "limit": {"type": "integer", "description": "429 for a limit: the limit reached."},
        "window": {
            "type": "string",
            "enum": ["second", "period"],
            "description": "429 for a limit: `second` for the burst, `period` for the quota.",
        },
        "retry_after": {"type": "integer", "description": "429 for a limit: seconds until it resets."},
        "reset_at": {
            "type": "string",
            "format": "date-time",
            "description": "429 for a limit: when it resets (ISO 8601, UTC).",
        },
        "upgrade_tier": {
            "type": "string",
            "description": "429 for the quota or spending cap, when a higher tier exists: its name.",
        },
        "upgrade_url": {
            "type": "string",
            "format": "uri",
            "description": "With `upgrade_tier`: where to upgrade.",
        },
        "billing_url": {"type": "string", "description": "402 only: where to settle the payment."},
    },
    "required": ["error", "detail"],
}


def error_component() -> ResolvedComponent:
    # A new copy for each schema: the postprocessing hooks change the schemas
    # they are given (the enum of `window` becomes a component of its own).
    return ResolvedComponent(
        name="Error", type=ResolvedComponent.SCHEMA, object="Error", schema=deepcopy(ERROR_SCHEMA)
    )


def _header(description: str, schema_type: str = "integer", required: bool = False) -> dict:
    return {"description": description, "required": required, "schema": {"type": schema_type}}


RETRY_AFTER = _header("Seconds to wait before retrying.", required=True)
RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": _header(
        'Both limits of the key\'s tier, e.g. `20;w=1;name="burst", 50000;w=2592000;name="quota"`.', "string"
    ),
    "RateLimit-Limit": _header("The limit closest to refusing: the burst or the quota."),
    "RateLimit-Remaining": _header("Requests left under that limit."),
    "RateLimit-Reset": _header("Seconds until that limit resets."),
    "X-RateLimit-Limit": _header("As RateLimit-Limit."),
    "X-RateLimit-Remaining": _header("As RateLimit-Remaining."),
    "X-RateLimit-Reset": _header("When that limit resets, as a Unix time."),
}
STATUS_TITLES = {
    400: "The request is not valid.",
    401: "No API key, or one that cannot be used.",
    402: "API access is suspended until the account's payment is settled.",
    403: "The API key lacks the scope this operation needs.",
    406: "The response can only be JSON.",
    409: "The Idempotency-Key is busy or its response was not kept.",
    422: "The Idempotency-Key was used for a different request.",
    429: "Too many requests.",
    503: "A service the API needs is out of reach; retry after Retry-After.",
}
STATUS_HEADERS = {
    401: {"WWW-Authenticate": _header('`Bearer realm="api"`.', "string", required=True)},
    409: {"Retry-After": {**RETRY_AFTER, "required": False}},
    429: {"Retry-After": RETRY_AFTER, **RATE_LIMIT_HEADERS},
    503: {"Retry-After": RETRY_AFTER},
}


def _matching(classes: Iterable[type], errors_by_class: dict) -> list[DocumentedError]:
    return [
        error
        for cls in classes
        for known, errors in errors_by_class.items()
        if issubclass(cls, known)
        for error in errors
    ]


def _is_metered(view) -> bool:
    return getattr(view, "metered", True) and any(
        issubclass(cls, TierThrottle) for cls in view.throttle_classes
    )


def _can_bill(view, method: str) -> bool:
    return _is_metered(view) and getattr(view, "billable", True) and method not in UNBILLED_METHODS


def view_errors(view, method: str) -> list[DocumentedError]:
    """Every error an operation can answer, in the order its request meets them."""
    errors = [*EVERY_VIEW_ERRORS]
    errors += _matching(view.authentication_classes, AUTHENTICATION_ERRORS)
    errors += _matching(view.permission_classes, PERMISSION_ERRORS)
    if _is_metered(view):
        errors += [BURST_LIMIT, documented(LimiterDown)]
    if _can_bill(view, method):
        errors += [*QUOTA_REFUSALS, *IDEMPOTENCY_ERRORS]
    errors += [documented(error) for error in getattr(view, "raises", ())]
    return errors


def error_responses(errors: list[DocumentedError]) -> dict[str, dict]:
    by_status: dict[int, dict[str, str]] = {}
    for error in errors:
        by_status.setdefault(error.status, {}).setdefault(error.code, error.meaning)
    return {
        str(status): {
            "description": "\n".join(
                [STATUS_TITLES.get(status, "An error."), ""]
                + [f"- `{code}`: {meaning}" for code, meaning in codes.items()]
            ),
            "content": {"application/json": {"schema": error_component().ref}},
            **({"headers": deepcopy(STATUS_HEADERS[status])} if status in STATUS_HEADERS else {}),
        }
        for status, codes in sorted(by_status.items())
    }


# Answered by the HTTP server in front of Django (gunicorn), in its own words.
FRONT_END_RESPONSES = {
    "414": {"description": "The URL is longer than the HTTP server accepts (its body is not JSON)."},
}


def success_headers(view, method: str) -> dict[str, dict]:
    headers = deepcopy(RATE_LIMIT_HEADERS) if _is_metered(view) else {}
    if _can_bill(view, method):
        headers[REPLAYED_HEADER] = _header(
            "`true` on the stored answer to a repeated Idempotency-Key request (not billed).", "string"
        )
    return headers


class DocumentedAutoSchema(MeteredAutoSchema):
    """MeteredAutoSchema, with every error response and the success headers."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        registry.register_on_missing(error_component())
        responses = operation["responses"]
        headers = success_headers(self.view, method)
        for status, response in responses.items():
            if status.startswith("2") and headers:
                response.setdefault("headers", {}).update(headers)
        responses.update(error_responses(view_errors(self.view, method)))
        responses.update(deepcopy(FRONT_END_RESPONSES))
        return operation


ACCOUNT_TAG = "Account"


class UsageViewSchema(OpenApiViewExtension):
    """The usage API's title, told from here: metering.views knows no tags."""

    target_class = "metering.views.UsageView"

    def view_replacement(self):
        @extend_schema_view(
            get=extend_schema(
                operation_id="usage",
                summary="Your usage and limits this period",
                description=(
                    "The calling key's account: its tier, quota and burst, the requests used and left "
                    "this period, the usage per day and the bill projected so far. Limited by the burst "
                    "like any call, but never counted against the quota nor billed."
                ),
                tags=[ACCOUNT_TAG],
            )
        )
        class DocumentedUsageView(self.target_class):
            pass

        return DocumentedUsageView
