"""Key contexts: what the hot path needs to know about a key, without SQL.

A `KeyContext` is an immutable snapshot of a key, its customer's limits and
billing standing. It is found, by the key's hash under the current pepper
(apikeys.peppers), in three layers:

1. this process's dict, trusted for KEY_CONTEXT_TTL_SECONDS (default 1 s);
2. the shared Django cache (Redis when REDIS_URL is set), under a key that
   includes the global context version;
3. PostgreSQL, by its hash under every accepted pepper in one query; a key
   found by an older pepper's hash is moved to the current one.

Any change that affects a context (revocation, a tier's or customer's limits,
billing state) calls `invalidate_key_contexts()`, which sets a new version: the
shared entries are orphaned at once and every process drops its dict at its
next version check, so the change is enforced everywhere within the TTL.
Steady state per request: no SQL and no Redis; one version read per process
per TTL.

Hashes no key has, and revoked keys, are *rejected*: kept apart from the
versioned contexts, in this process and in the shared cache for
REJECTED_KEY_CACHE_SECONDS, because no version bump can make them valid (a
revocation is final). So a flood of made-up or revoked keys costs one lookup
per key, whichever process sees it first, then no SQL; it cannot evict the
contexts of working keys from a process; and a local miss reads both shared
entries in one round trip (MGET), as many as before. Only the creation of a key
can turn a rejected hash into a valid one: `forget_rejected_key()` drops it.
"""

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, transaction

from core.breaker import cache_breaker
from core.errors import DatabaseUnavailable

from .last_used import LastUsedWriter, api_keys_record_use, last_used_writer
from .models import APIKey

logger = logging.getLogger(__name__)

VERSION_KEY = "apikeys:v1:ctx-version"
# Bounds on staleness when a version bump could not be written (Redis down at
# the moment of the change): no context outlives these, bump or not.
SHARED_TTL_SECONDS = 60
LOCAL_MAX_AGE_SECONDS = 30
# Per process, for contexts and for rejected keys alike: a flood of made-up
# keys must not grow a process without bound.
LOCAL_MAX_ENTRIES = 10_000
LAST_USED_FLUSH_SECONDS = 60
# The last context loaded for each key, kept beyond any version: what the API
# serves on while PostgreSQL is unreachable.
LAST_KNOWN_PREFIX = "apikeys:v2:ctx-last:"
LAST_KNOWN_TTL_SECONDS = 7 * 24 * 3600
# Rejected keys in the shared cache: UNKNOWN for a hash no key has, else the
# revoked key's context (its 401 says "revoked").
REJECTED_PREFIX = "apikeys:v2:rejected:"
UNKNOWN = "unknown"


def _key_tag(hashed_key: str) -> str:
    """The hash tag of a key's entries: one cluster slot for all of them, so
    that one MGET reads its context and its rejection on Redis Cluster too
    (v2: v1 had no tag)."""
    return f"{{k{hashed_key}}}"


def context_key(version, hashed_key: str) -> str:
    return f"apikeys:v2:ctx:{version}:{_key_tag(hashed_key)}"


def last_known_key(hashed_key: str) -> str:
    return LAST_KNOWN_PREFIX + _key_tag(hashed_key)


def rejected_key(hashed_key: str) -> str:
    return REJECTED_PREFIX + _key_tag(hashed_key)


class ContextUnavailable(DatabaseUnavailable):
    detail = "The key could not be checked right now: the database is unreachable. Retry shortly."


def _timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


@dataclass(frozen=True)
class KeyContext:
    key_id: int
    key_prefix: str
    customer_id: int
    user_id: int
    scopes: tuple[str, ...]
    revoked: bool
    expires_at: float | None  # epoch seconds
    tier_slug: str
    quota: int
    quota_period: str
    burst: int
    hard_quota: bool  # False when the tier bills overage instead of refusing
    overage_ceiling: int | None  # with overage: quota plus the spending cap's units; None: no cap
    billing_period_start: float | None
    billing_period_end: float | None
    suspended_from: float | None  # epoch seconds from which the API answers 402

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def is_suspended(self, now: float) -> bool:
        return self.suspended_from is not None and self.suspended_from <= now

    @classmethod
    def from_api_key(cls, api_key: APIKey) -> "KeyContext":
        customer, tier = api_key.customer, api_key.customer.tier
        return cls(
            key_id=api_key.pk,
            key_prefix=api_key.prefix,
            customer_id=customer.pk,
            user_id=customer.user_id,
            scopes=tuple(api_key.scopes),
            revoked=api_key.revoked_at is not None,
            expires_at=_timestamp(api_key.expires_at),
            tier_slug=tier.slug,
            quota=customer.quota,
            quota_period=tier.quota_period,
            burst=customer.burst,
            hard_quota=not tier.has_overage,
            overage_ceiling=customer.overage_ceiling,
            billing_period_start=_timestamp(customer.current_period_start),
            billing_period_end=_timestamp(customer.current_period_end),
            suspended_from=_timestamp(customer.suspended_from()),
        )


def _load_from_database(hashed_key: str, older: tuple[str, ...]) -> KeyContext | None:
    candidates = (hashed_key, *older)
    api_key = APIKey.objects.select_related("customer__tier").filter(hashed_key__in=candidates).first()
    if api_key is None:
        return None
    if api_key.hashed_key != hashed_key:
        _move_to_current_pepper(api_key, hashed_key)
    return KeyContext.from_api_key(api_key)


def _move_to_current_pepper(api_key: APIKey, hashed_key: str) -> None:
    """Store the key's hash under the current pepper (only the raw key, seen
    now, can make it), so that the older pepper can later be removed without
    stopping it. Best effort: on failure the older hash keeps working."""
    try:
        with transaction.atomic():  # a savepoint: a failure here must not spoil a caller's transaction
            APIKey.objects.filter(pk=api_key.pk, hashed_key=api_key.hashed_key).update(hashed_key=hashed_key)
    except DatabaseError:
        logger.warning("could not move API key %s to the current pepper", api_key.prefix, exc_info=True)


class KeyContextCache:
    """The per-process layer, in front of the shared cache and the database."""

    def __init__(self, ttl: float, clock=time.monotonic, writer: LastUsedWriter = last_used_writer):
        self.ttl = ttl
        self._clock = clock
        self._writer = writer
        self._entries: dict[str, tuple[KeyContext, float]] = {}  # -> (context, loaded at)
        # -> (None for unknown, or the revoked context; remembered at)
        self._rejected: dict[str, tuple[KeyContext | None, float]] = {}
        self._version = None
        self._checked_at = float("-inf")
        self._last_used: dict[int, float] = {}
        self._last_used_flushed_at = clock()
        self._lock = threading.Lock()

    def get(self, hashed_key: str, older: tuple[str, ...] = (), *, before_query=None) -> KeyContext | None:
        """The context for a key, or None when no such key exists: `hashed_key`
        is its hash under the current pepper, `older` under the older ones.

        `before_query`, when given, is called before the database is asked (a
        key in neither this process nor the shared cache): it may raise to
        refuse the lookup.
        """
        self._check_version()
        now = self._clock()
        entry = self._entries.get(hashed_key)
        if entry is not None and now - entry[1] < LOCAL_MAX_AGE_SECONDS:
            return entry[0]
        rejected = self._rejected.get(hashed_key)
        # No version bump can make a rejected key valid: the same time here as shared.
        if rejected is not None and now - rejected[1] < settings.REJECTED_KEY_CACHE_SECONDS:
            return rejected[0]
        context = self._shared_get(hashed_key, older, before_query)
        self._remember(hashed_key, context, now)
        return context

    def _remember(self, hashed_key: str, context: KeyContext | None, now: float) -> None:
        if _is_rejected(context):
            layer = self._rejected
            self._entries.pop(hashed_key, None)
        else:
            layer = self._entries
        if len(layer) >= LOCAL_MAX_ENTRIES and hashed_key not in layer:
            layer.clear()
        layer[hashed_key] = (context, now)

    def forget_rejected(self, hashed_key: str) -> None:
        self._rejected.pop(hashed_key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
            self._rejected = {}
            self._checked_at = float("-inf")

    def _check_version(self) -> None:
        now = self._clock()
        if now - self._checked_at < self.ttl:
            return
        version = _shared_cache("get", VERSION_KEY)
        with self._lock:
            # Redis down: keep what we have rather than fail authentication (the
            # limiter decides what Redis being down means); ask again after the TTL.
            if version is not UNREACHABLE and version != self._version:
                self._entries = {}
                self._version = version
            self._checked_at = now

    def _shared_get(self, hashed_key: str, older: tuple[str, ...], before_query=None) -> KeyContext | None:
        shared_key, rejected = context_key(self._version, hashed_key), rejected_key(hashed_key)
        found = _shared_cache("get_many", [shared_key, rejected])
        if found is UNREACHABLE:
            found = {}
        elif shared_key in found:
            return found[shared_key]
        elif rejected in found:
            return None if found[rejected] == UNKNOWN else found[rejected]
        if before_query is not None:
            before_query()
        context = self._load(hashed_key, older)
        if _is_rejected(context):
            # Unwritten while Redis is down: the next sight asks the database again.
            value = UNKNOWN if context is None else context
            _shared_cache("set", rejected, value, settings.REJECTED_KEY_CACHE_SECONDS)
        elif _shared_cache("set", shared_key, context, SHARED_TTL_SECONDS) is not UNREACHABLE:
            _shared_cache("set", last_known_key(hashed_key), context, LAST_KNOWN_TTL_SECONDS)
        return context

    def _load(self, hashed_key: str, older: tuple[str, ...]) -> KeyContext | None:
        """From PostgreSQL; with the database unreachable, the last known context
        (this process's, else the shared copy), so that the API keeps serving
        on the tier and billing state it last knew rather than failing."""
        try:
            return _load_from_database(hashed_key, older)
        except DatabaseError:
            logger.warning("key context: database unreachable, serving the last known state", exc_info=True)
            entry = self._entries.get(hashed_key)
            if entry is not None:
                return entry[0]
            last_known = _shared_cache("get", last_known_key(hashed_key))
            if last_known is None or last_known is UNREACHABLE:
                raise ContextUnavailable() from None
            return last_known

    def note_use(self, key_id: int, when: float) -> None:
        """Remember a key's use; handed to the writer thread at most once a
        minute per process, so the request never waits on the database."""
        self._last_used[key_id] = when
        if self._clock() - self._last_used_flushed_at >= LAST_USED_FLUSH_SECONDS:
            self._writer.submit(self._take_last_used())

    def flush_last_used(self) -> None:
        """Write the uses noted so far, now, in this thread."""
        pending = self._take_last_used()
        if pending:
            api_keys_record_use(last_used=pending)

    def _take_last_used(self) -> dict[int, float]:
        with self._lock:
            pending, self._last_used = self._last_used, {}
            self._last_used_flushed_at = self._clock()
        return pending


UNREACHABLE = object()  # what _shared_cache answers while Redis is down


def _shared_cache(operation: str, *args):
    """cache.<operation>(*args), or UNREACHABLE when Redis is down. The
    breaker (core.breaker) spares each request the timeout once one call
    failed, and logs the outage once rather than per request."""
    breaker = cache_breaker()
    if breaker is not None and not breaker.allow():
        return UNREACHABLE
    try:
        result = getattr(cache, operation)(*args)
    except Exception as error:
        if breaker is not None:
            breaker.failed(error)
        else:
            logger.warning("shared key context cache unreachable", exc_info=True)
        return UNREACHABLE
    if breaker is not None:
        breaker.succeeded()
    return result


def _is_rejected(context: KeyContext | None) -> bool:
    """No key, or a revoked one: rejected for good (until a key with the hash is created)."""
    return context is None or context.revoked


key_contexts = KeyContextCache(ttl=settings.KEY_CONTEXT_TTL_SECONDS)


def forget_rejected_key(hashed_key: str) -> None:
    """A key with this hash was just created: drop its rejection (after commit),
    here and in the shared cache, so the key works at once.

    Other processes may still hold a local rejection of the hash: harmless,
    since a key's secret is drawn at its creation, so nobody can have sent it
    before. A rejection written by a lookup that raced the creation is the same
    case.
    """

    def forget():
        key_contexts.forget_rejected(hashed_key)
        _shared_cache("delete", rejected_key(hashed_key))

    transaction.on_commit(forget)


def invalidate_key_contexts() -> None:
    """Make every process reload key contexts within the TTL (after commit)."""

    def bump():
        key_contexts.clear()
        try:
            # A new random token, not INCR: a counter lost with Redis (restart,
            # flush, eviction) restarts at 1, a value a process may still hold,
            # and that process would keep its stale contexts.
            cache.set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
        except Exception:
            # Redis down: the shared entries are unreachable too, and processes
            # reload from the database once their TTL passes and Redis is back.
            logger.warning("could not bump the key context version", exc_info=True)

    transaction.on_commit(bump)
