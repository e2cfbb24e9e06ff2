"""The OpenAPI schema of metered operations: the Idempotency-Key header and
the answers it can bring, on every operation a request can be billed for
(metering/idempotency.py has the rules)."""

from django.conf import settings
from drf_spectacular.openapi import AutoSchema

from .idempotency import MAX_KEY_LENGTH
from .throttling import TierThrottle

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": MAX_KEY_LENGTH},
    "description": (
        "Send the request again under the same key without it running or being billed twice. "
        f"For {settings.IDEMPOTENCY_KEY_TTL_SECONDS // 3600} hours after a 2xx, the same request "
        "(method, path, query, body) gets the stored "
        "response with `Idempotent-Replayed: true`, unbilled. Responses over "
        f"{settings.IDEMPOTENCY_MAX_STORED_BYTES // 1024} KiB are not stored: a repeat then gets 409."
    ),
}
ERROR_BODY = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["error", "detail"],
}
IDEMPOTENCY_RESPONSES = {
    "409": "`idempotency_key_in_use`: a request under this key is still running (see Retry-After); "
    "or `idempotency_response_not_stored`: its response was too large to keep, use a new key.",
    "422": "`idempotency_key_reused`: this key was used for a different request.",
}


def _is_billable(view, method: str) -> bool:
    throttled = any(issubclass(throttle, TierThrottle) for throttle in view.throttle_classes)
    return throttled and getattr(view, "billable", True) and method not in ("OPTIONS", "HEAD")


class MeteredAutoSchema(AutoSchema):
    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None or not _is_billable(self.view, self.method):
            return operation
        operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
        for code, description in IDEMPOTENCY_RESPONSES.items():
            operation["responses"][code] = {
                "description": description,
                "content": {"application/json": {"schema": ERROR_BODY}},
            }
        return operation
