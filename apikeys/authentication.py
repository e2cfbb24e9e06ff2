"""DRF authentication by API key: `Authorization: Bearer KEY` or `X-API-Key: KEY`."""

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from . import keys, services
from .exceptions import ExpiredKey, MalformedKey, RevokedKey, UnknownKey
from .models import KeyStatus
from .selectors import api_key_get_by_raw


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
    """Sets request.user to the key's user and request.auth to the APIKey."""

    def authenticate(self, request):
        raw_key = raw_key_from_request(request)
        if raw_key is None:
            return None
        # The checksum rejects typos and garbage without touching the database.
        if not keys.is_well_formed(raw_key, settings.API_KEY_PREFIX):
            raise MalformedKey()
        api_key = api_key_get_by_raw(raw_key)
        if api_key is None:
            raise UnknownKey()
        now = timezone.now()
        status = api_key.status(now)
        if status == KeyStatus.REVOKED:
            raise RevokedKey()
        if status == KeyStatus.EXPIRED:
            raise ExpiredKey()
        services.api_key_touch(api_key=api_key, now=now)
        return (api_key.customer.user, api_key)

    def authenticate_header(self, request):
        # Returning a value keeps DRF from turning 401s into 403s.
        return 'Bearer realm="api"'
