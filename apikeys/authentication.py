"""DRF authentication by API key: `Authorization: Bearer KEY` or `X-API-Key: KEY`."""

import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.functional import SimpleLazyObject
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from . import keys, peppers
from .context import key_contexts
from .exceptions import ExpiredKey, MalformedKey, RevokedKey, UnknownKey
from .failures import failed_authentications


def raw_key_from_request(request) -> str | None:
    """The key the client sent, or None when it sent none.

    A Bearer header with no key or extra words is malformed rather than
    missing: the client meant to authenticate and should learn why it failed.
    """
    parts = get_authorization_header(request).split()
    if parts and parts[0].lower() == b"bearer":
        if len(parts) != 2:
            raise MalformedKey("The Authorization header must be 'Bearer <key>'.")
        try:
            return parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise MalformedKey() from None
    header_key = request.META.get("HTTP_X_API_KEY")
    if header_key is not None:
        return header_key.strip()
    return None


class APIKeyAuthentication(BaseAuthentication):
    """Sets request.auth to the key's KeyContext and request.user to its owner.

    The user is loaded lazily: the hot path reads only the context, so an
    authenticated request makes no SQL query unless the view asks for the user.
    Every failure counts against the client's address (apikeys.failures),
    which gets 429 instead of 401 past its limit.
    """

    def authenticate(self, request):
        try:
            return self._authenticate(request)
        except AuthenticationFailed:
            failed_authentications.count(request)
            raise

    def _authenticate(self, request):
        raw_key = raw_key_from_request(request)
        if raw_key is None:
            return None
        # The checksum rejects typos and garbage without any lookup.
        if not keys.is_well_formed(raw_key, settings.API_KEY_PREFIX):
            raise MalformedKey()
        hashes = peppers.lookup_hashes(raw_key)
        context = key_contexts.get(
            hashes.current,
            hashes.older,
            # An address over its limit makes the database look up no more keys.
            before_query=lambda: failed_authentications.refuse_if_refused(request),
        )
        if context is None:
            raise UnknownKey()
        now = time.time()
        if context.revoked:
            raise RevokedKey()
        if context.is_expired(now):
            raise ExpiredKey()
        key_contexts.note_use(context.key_id, now)
        user = SimpleLazyObject(lambda: get_user_model().objects.get(pk=context.user_id))
        return (user, context)

    def authenticate_header(self, request):
        # Returning a value keeps DRF from turning 401s into 403s.
        return 'Bearer realm="api"'
