"""Key contexts: what the hot path needs to know about a key, without SQL.

A `KeyContext` is an immutable snapshot of a key, its customer's limits and
billing standing. It is found, by the key's hash under the current pepper
(apikeys.peppers), in three layers:

1. this process's dict, trusted for KEY_CONTEXT_TTL_SECONDS (default 1 s),
   then again for as long as the key's version in Redis is unchanged;
2. the shared Django cache (Redis when REDIS_URL is set): the context stamped
   with the key's version when it was loaded, and the version itself;
3. PostgreSQL, by its hash under every accepted pepper in one query; a key
   found by an older pepper's hash is moved to the current one.

Versions are per key, not global: a change that affects contexts (revocation,
a tier's or customer's limits, billing state) calls `invalidate_key_contexts()`
with the keys it affects, which gives each a new random version after commit.
Every process rereads the versions of the keys it serves once per TTL, so the
change is enforced everywhere within a second, and no single Redis key is read
by every request of every customer: on Redis Cluster a failing shard delays
only the keys whose slots it holds. A key's version, context and rejection
share its hash tag: one slot, read together in one MGET.

The version is read before the database is (in that MGET), and the context is
stored stamped with it: a load that raced a change is stored under the old
version, so nobody trusts it. A stored context also serves, whatever its
version, as the last known state while PostgreSQL is unreachable (kept
CONTEXT_TTL_SECONDS); with Redis down when a change committed, no context
outlives SHARED_MAX_AGE_SECONDS plus LOCAL_MAX_AGE_SECONDS.

Steady state per request: no SQL and no Redis; one version read per key and
process per TTL.

Hashes no key has, and revoked keys, are *rejected*: kept apart from the
contexts, in this process and in the shared cache for
REJECTED_KEY_CACHE_SECONDS, because no change can make them valid (a
revocation is final). So a flood of made-up or revoked keys costs one lookup
per key, whichever process sees it first, then no SQL; it cannot evict the
contexts of working keys from a process. Only the creation of a key can turn
a rejected hash into a valid one: `forget_rejected_key()` drops it.
"""

import logging
import secrets
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, transaction
from django.db.models import QuerySet

from core.breaker import cache_breaker
from core.errors import DatabaseUnavailable

from .last_used import LastUsedWriter, last_used_writer
from .models import APIKey

logger = logging.getLogger(__name__)

# A stored context is trusted this long after its load even when its version
# is current: the bound on staleness when a change's new version could not be
# written (Redis down at the moment of the change).
SHARED_MAX_AGE_SECONDS = 60
LOCAL_MAX_AGE_SECONDS = 30
# How long Redis keeps a loaded context: what the API serves on while
# PostgreSQL is unreachable, for keys used within this time.
CONTEXT_TTL_SECONDS = 7 * 24 * 3600
# A version must outlive every context stamped before it was set: were it to
# expire first, a context stamped "no version" would match again.
VERSION_TTL_SECONDS = CONTEXT_TTL_SECONDS + 24 * 3600
# Per process, for contexts and for rejected keys alike: a flood of made-up
# keys must not grow a process without bound.
LOCAL_MAX_ENTRIES = 10_000
# Versions set per Redis round trip by an invalidation of many keys (a tier's).
INVALIDATION_BATCH = 1_000
# Rejected keys in the shared cache: UNKNOWN for a hash no key has, else the
# revoked key's context (its 401 says "revoked").
UNKNOWN = "unknown"


def _key_tag(hashed_key: str) -> str:
    """The hash tag of a key's entries: one cluster slot for its context,
    version and rejection, read in one MGET on Redis Cluster too."""
    return f"{{k{hashed_key}}}"


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

    def stored(self) -> tuple:
        """The field values alone: a third of the pickled dataclass in Redis."""
        return tuple(getattr(self, name) for name in _FIELDS)


_FIELDS = tuple(field.name for field in fields(KeyContext))
# In the shared keys' names: contexts stored by a release with other fields
# are never read back by this one (a deploy changes the name instead).
LAYOUT = f"{zlib.crc32(','.join(_FIELDS).encode()):08x}"


def context_key(hashed_key: str) -> str:
    return f"apikeys:v3:ctx:{LAYOUT}:{_key_tag(hashed_key)}"


def version_key(hashed_key: str) -> str:
    return f"apikeys:v3:ver:{_key_tag(hashed_key)}"


def rejected_key(hashed_key: str) -> str:
    return f"apikeys:v3:rej:{LAYOUT}:{_key_tag(hashed_key)}"


class StoredContext(NamedTuple):
    """A context in the shared cache, with the version it was loaded at."""

    version: str | None
    loaded_at: float  # epoch seconds
    values: tuple

    def context(self) -> KeyContext:
        return KeyContext(*self.values)


class ContextUnavailable(DatabaseUnavailable):
    detail = "The key could not be checked right now: the database is unreachable. Retry shortly."


def _timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


class Loaded(NamedTuple):
    context: KeyContext | None
    fresh: bool  # from the database now; False: a last known state, or a hash still to move


def _load_from_database(hashed_key: str, older: tuple[str, ...]) -> Loaded:
    candidates = (hashed_key, *older)
    api_key = APIKey.objects.select_related("customer__tier").filter(hashed_key__in=candidates).first()
    if api_key is None:
        return Loaded(None, True)
    # A key still stored under an older pepper's hash gets its version under
    # that hash: cached under the current one, a change would not reach it.
    moved = api_key.hashed_key == hashed_key or _move_to_current_pepper(api_key, hashed_key)
    return Loaded(KeyContext.from_api_key(api_key), moved)


def _move_to_current_pepper(api_key: APIKey, hashed_key: str) -> bool:
    """Store the key's hash under the current pepper (only the raw key, seen
    now, can make it), so that the older pepper can later be removed without
    stopping it. Best effort: on failure the older hash keeps working."""
    try:
        with transaction.atomic():  # a savepoint: a failure here must not spoil a caller's transaction
            APIKey.objects.filter(pk=api_key.pk, hashed_key=api_key.hashed_key).update(hashed_key=hashed_key)
    except DatabaseError:
        logger.warning("could not move API key %s to the current pepper", api_key.prefix, exc_info=True)
        return False
    return True


class _Entry(NamedTuple):
    context: KeyContext
    version: object  # as read from Redis; NO_VERSION when Redis could not say
    loaded_at: float  # this process's clock
    checked_at: float


NO_VERSION = object()  # matches no version Redis holds: reload once it answers


class KeyContextCache:
    """The per-process layer, in front of the shared cache and the database."""

    def __init__(
        self,
        ttl: float,
        clock=time.monotonic,
        writer: LastUsedWriter = last_used_writer,
        wall_clock=time.time,
    ):
        self.ttl = ttl
        self._clock = clock
        self._wall_clock = wall_clock
        self._writer = writer
        self._entries: dict[str, _Entry] = {}
        # -> (None for unknown, or the revoked context; remembered at)
        self._rejected: dict[str, tuple[KeyContext | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, hashed_key: str, older: tuple[str, ...] = (), *, before_query=None) -> KeyContext | None:
        """The context for a key, or None when no such key exists: `hashed_key`
        is its hash under the current pepper, `older` under the older ones.

        `before_query`, when given, is called before the database is asked (a
        key in neither this process nor the shared cache): it may raise to
        refuse the lookup.
        """
        now = self._clock()
        entry = self._entries.get(hashed_key)
        if entry is not None and now - entry.loaded_at < LOCAL_MAX_AGE_SECONDS:
            if now - entry.checked_at < self.ttl:
                return entry.context
            version = _shared_cache("get", version_key(hashed_key))
            # Redis down: keep what we have rather than fail authentication (the
            # limiter decides what Redis being down means); ask again after the TTL.
            if version is UNREACHABLE or version == entry.version:
                self._entries[hashed_key] = entry._replace(checked_at=now)
                return entry.context
        rejected = self._rejected.get(hashed_key)
        # No change can make a rejected key valid: the same time here as shared.
        if rejected is not None and now - rejected[1] < settings.REJECTED_KEY_CACHE_SECONDS:
            return rejected[0]
        context, version, keep = self._shared_get(hashed_key, older, before_query)
        if keep:
            self._remember(hashed_key, context, version, now)
        return context

    def _remember(self, hashed_key: str, context: KeyContext | None, version, now: float) -> None:
        if _is_rejected(context):
            layer, value = self._rejected, (context, now)
            self._entries.pop(hashed_key, None)
        else:
            layer, value = self._entries, _Entry(context, version, now, now)
        if len(layer) >= LOCAL_MAX_ENTRIES and hashed_key not in layer:
            layer.clear()
        layer[hashed_key] = value

    def forget(self, hashed_keys: Iterable[str]) -> None:
        for hashed_key in hashed_keys:
            self._entries.pop(hashed_key, None)

    def forget_rejected(self, hashed_key: str) -> None:
        self._rejected.pop(hashed_key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
            self._rejected = {}

    def _shared_get(self, hashed_key: str, older: tuple[str, ...], before_query=None):
        """(context, its version, whether this process may keep it)."""
        names = context_key(hashed_key), rejected_key(hashed_key), version_key(hashed_key)
        found = _shared_cache("get_many", list(names))
        if found is UNREACHABLE:
            found, version = {}, NO_VERSION
        else:
            version = found.get(names[2])
        stored = found.get(names[0])
        if stored is not None:
            stored = StoredContext(*stored)
        if names[1] in found:
            rejected = found[names[1]]
            return (None if rejected == UNKNOWN else KeyContext(*rejected)), version, True
        if (
            stored is not None
            and stored.version == version
            and self._wall_clock() - stored.loaded_at < SHARED_MAX_AGE_SECONDS
        ):
            return stored.context(), version, True
        if before_query is not None:
            before_query()
        context, fresh = self._load(hashed_key, older, stored)
        if not fresh:
            # A last known state while PostgreSQL is down: this process serves
            # on it until the database answers, but never shares it as current.
            return context, version, context is not None and hashed_key not in older
        if _is_rejected(context):
            # Unwritten while Redis is down: the next sight asks the database again.
            value = UNKNOWN if context is None else context.stored()
            _shared_cache("set", names[1], value, settings.REJECTED_KEY_CACHE_SECONDS)
        elif version is not NO_VERSION:
            store_shared(hashed_key, context, version, loaded_at=self._wall_clock())
        return context, version, True

    def _load(self, hashed_key: str, older: tuple[str, ...], stored: StoredContext | None) -> Loaded:
        """From PostgreSQL; with the database unreachable, the last known context
        (this process's, else the shared copy, whatever its version), so that
        the API keeps serving on the tier and billing state it last knew rather
        than failing."""
        try:
            return _load_from_database(hashed_key, older)
        except DatabaseError:
            logger.warning("key context: database unreachable, serving the last known state", exc_info=True)
            entry = self._entries.get(hashed_key)
            if entry is not None:
                return Loaded(entry.context, False)
            if stored is None:
                raise ContextUnavailable() from None
            return Loaded(stored.context(), False)

    def note_use(self, key_id: int, when: float) -> None:
        """Remember a key's use: its writer thread stores it within seconds
        (apikeys.last_used), so the request never waits on the database."""
        self._writer.note(key_id, when)

    def flush_last_used(self) -> None:
        """Write the uses noted so far, now, in this thread."""
        self._writer.write_now()


def store_shared(hashed_key: str, context: KeyContext, version: str | None, *, loaded_at: float) -> None:
    """Share a context loaded at `version` (read before the load)."""
    stored = (version, loaded_at, context.stored())  # a plain tuple: no class name pickled
    _shared_cache("set", context_key(hashed_key), stored, CONTEXT_TTL_SECONDS)


UNREACHABLE = object()  # what _shared_cache answers while Redis is down


def _shared_cache(operation: str, *args):
    """cache.<operation>(*args), or UNREACHABLE when Redis is down. The
    breaker (core.breaker) spares each request the timeout once one call
    failed, and logs the outage once rather than per request. On Redis
    Cluster it is the breaker of the node serving the key (a list of keys is
    one key's entries, in one slot; a dict of many keys, the cluster's)."""
    first = args[0]
    breaker = cache_breaker(
        first if isinstance(first, str) else first[0] if isinstance(first, list) else None
    )
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


def invalidate_key_contexts(api_keys: QuerySet[APIKey]) -> None:
    """Make every process reload the contexts of these keys within the TTL.

    The keys are listed now (a deletion may cascade to them); their new
    version is written after commit, one Redis round trip per
    INVALIDATION_BATCH keys (a tier of 100,000 keys: about a second).
    """
    hashed_keys = list(api_keys.values_list("hashed_key", flat=True))
    if hashed_keys:
        transaction.on_commit(lambda: new_versions(hashed_keys))


def new_versions(hashed_keys: list[str]) -> None:
    key_contexts.forget(hashed_keys)
    # Random, not INCR: a counter lost with Redis (restart, flush) would
    # restart at a value a process may still hold with its stale context.
    version = secrets.token_hex(8)
    for start in range(0, len(hashed_keys), INVALIDATION_BATCH):
        batch = hashed_keys[start : start + INVALIDATION_BATCH]
        written = _shared_cache("set_many", {version_key(key): version for key in batch}, VERSION_TTL_SECONDS)
        if written is UNREACHABLE:
            # The stored contexts are unreachable too; each is trusted no longer
            # than SHARED_MAX_AGE_SECONDS once Redis is back.
            logger.warning("could not set new key context versions for %d keys", len(hashed_keys))
            return


def customer_key_contexts(customer_ids: Iterable[int]) -> QuerySet[APIKey]:
    """The keys whose contexts carry these customers' limits and standing."""
    return APIKey.objects.filter(customer_id__in=list(customer_ids), revoked_at__isnull=True)


def tier_key_contexts(tier_ids: Iterable[int]) -> QuerySet[APIKey]:
    return APIKey.objects.filter(customer__tier_id__in=list(tier_ids), revoked_at__isnull=True)
