"""Pure functions for the API key format. No database, no cache, no settings
lookups beyond the prefix and pepper passed in.

A key is `<prefix><secret><checksum>`, for example
`tk_live_` + 40 base62 characters + 6 base62 characters:

- the readable prefix makes a leaked key recognisable to secret scanners;
- the secret is 40 characters drawn by `secrets` from 62 symbols (238 bits),
  of which the first 8 are shown as the key's public prefix, leaving 190
  secret bits;
- the checksum is CRC32 of everything before it, so a mistyped or truncated key
  is rejected before any lookup (the same scheme GitHub's tokens use).

Only `v<version>$` + HMAC-SHA256(pepper, key) is stored, the version naming
the pepper, so that a new pepper can be added while keys hashed with an older
one keep working; the raw key is shown once.
"""

import hashlib
import hmac
import secrets
import string
import zlib

ALPHABET = string.digits + string.ascii_letters  # base62: safe in URLs and shells
SECRET_LENGTH = 40
CHECKSUM_LENGTH = 6  # 62**6 > 2**32, so every CRC32 fits
PUBLIC_CHARS = 8  # secret characters shown in the public prefix


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, ALPHABET[0])


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_key(prefix: str) -> str:
    secret = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    body = prefix + secret
    return body + checksum(body)


def is_well_formed(raw_key: str, prefix: str) -> bool:
    """True when the key has our prefix, length, alphabet and a valid checksum."""
    if len(raw_key) != len(prefix) + SECRET_LENGTH + CHECKSUM_LENGTH:
        return False
    if not raw_key.startswith(prefix):
        return False
    rest = raw_key[len(prefix) :]
    if not all(char in ALPHABET for char in rest):
        return False
    body, given = raw_key[:-CHECKSUM_LENGTH], raw_key[-CHECKSUM_LENGTH:]
    return hmac.compare_digest(checksum(body), given)


def public_prefix(raw_key: str, prefix: str) -> str:
    """The part of a key that may be shown and stored in clear: `tk_live_AbCd1234`."""
    return raw_key[: len(prefix) + PUBLIC_CHARS]


def hash_key(raw_key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), raw_key.encode(), hashlib.sha256).hexdigest()


def stored_hash(raw_key: str, version: int, pepper: str) -> str:
    """What the database holds for a key: the pepper's version, then the HMAC."""
    return f"v{version}${hash_key(raw_key, pepper)}"
