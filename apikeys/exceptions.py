"""Why a request was not authenticated; each renders as 401 with its own code,
but for the 429 of an address that sent too many bad keys."""

from rest_framework import exceptions


class MissingKey(exceptions.NotAuthenticated):
    default_code = "missing_key"
    default_detail = "No API key. Send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."


class MalformedKey(exceptions.AuthenticationFailed):
    default_code = "malformed_key"
    default_detail = "The API key is malformed: check that it was copied whole."


class UnknownKey(exceptions.AuthenticationFailed):
    default_code = "unknown_key"
    default_detail = "The API key is not recognised."


class RevokedKey(exceptions.AuthenticationFailed):
    default_code = "revoked_key"
    default_detail = "The API key has been revoked."


class ExpiredKey(exceptions.AuthenticationFailed):
    default_code = "expired_key"
    default_detail = "The API key has expired."


class InsufficientScope(exceptions.PermissionDenied):
    default_code = "insufficient_scope"
    default_detail = "The API key does not have the scope this endpoint needs."


class TooManyFailedAuthentications(exceptions.Throttled):
    """Too many bad keys from one client address (apikeys.failures): DRF sets
    Retry-After from `wait`."""

    default_code = "too_many_failed_authentications"
    default_detail = "Too many requests with a bad API key from your address."
    extra_detail_singular = extra_detail_plural = "Retry in {wait} s."
    # Logged at debug (core.errors): a flood of bad keys must not flood the log;
    # apikeys.failures logs one warning when an address is first refused.
    log_level = "debug"
