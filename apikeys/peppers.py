"""The peppers API keys are hashed with, from settings: the current one, which
hashes new keys, and older ones still accepted (API_KEY_OLD_PEPPERS).

A key is looked up by its hash under every accepted pepper at once, in one
indexed query (`hashed_key IN (...)`); the current pepper's hash names it in
the caches.
"""

from typing import NamedTuple

from django.conf import settings

from . import keys


class LookupHashes(NamedTuple):
    current: str  # under the current pepper: what new keys store, and the caches' name for the key
    older: tuple[str, ...]  # under each older pepper still accepted


def current_hash(raw_key: str) -> str:
    return keys.stored_hash(raw_key, settings.API_KEY_PEPPER_VERSION, settings.API_KEY_PEPPER)


def lookup_hashes(raw_key: str) -> LookupHashes:
    older = tuple(
        keys.stored_hash(raw_key, version, pepper) for version, pepper in settings.API_KEY_OLD_PEPPERS.items()
    )
    return LookupHashes(current_hash(raw_key), older)


def accepted_versions() -> dict[int, str]:
    """Each accepted pepper version: "current" or "older"."""
    older = dict.fromkeys(settings.API_KEY_OLD_PEPPERS, "older")
    return {settings.API_KEY_PEPPER_VERSION: "current", **older}
