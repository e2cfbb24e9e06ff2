"""Fail fast while a dependency is down: a circuit breaker per process.

After one call fails (the dependency refused, or did not answer within its
timeout), callers ask `allow()` before the next call and get False for
`backoff` seconds, so requests answer at once (503, or a fallback) instead of
each waiting out the timeout. Then one caller at a time probes; its success
closes the breaker. Each outage logs two lines, when it starts and when it
ends (with how many calls failed fast meanwhile), not one per request.

One breaker per Redis connection pool (`redis_breaker`): the key context
cache and the limiter share the default cache's pool, so whichever notices
first spares the other its timeout. On Redis Cluster, one per node, found by
the key a call names: a stalled or lost master fails fast only the customers
whose slots it serves, and its promoted replica, a new node, starts closed.
(Whether the other masters keep serving meanwhile is the cluster's choice:
with cluster-require-full-coverage no they do.) PostgreSQL has one per server
(saas/postgresql).
"""

import logging
import threading
import time
import weakref

from django.conf import settings
from django.core.cache import caches

from .redis_cluster import REDIS_UNAVAILABLE, connection_settings, is_cluster

logger = logging.getLogger(__name__)


class Breaker:
    def __init__(self, name: str, *, backoff: float, clock=time.monotonic):
        self.name = name
        self.backoff = backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None  # None: closed
        self._down_since = 0.0
        self._failed_fast = 0

    def allow(self, probe_seconds: float | None = None) -> bool:
        """May a call be made now? While closed: yes (one attribute read).
        `probe_seconds`: how long a probe may take (its timeout), during which
        the others keep failing fast; the backoff by default."""
        if self._open_until is None:
            return True
        with self._lock:
            now = self._clock()
            if self._open_until is None:
                return True
            if now >= self._open_until:
                # This caller probes; the others keep failing fast meanwhile.
                self._open_until = now + max(self.backoff, probe_seconds or 0)
                return True
            self._failed_fast += 1
            return False

    def succeeded(self) -> None:
        if self._open_until is None:
            return
        with self._lock:
            if self._open_until is None:
                return
            self._open_until = None
            down_for, failed_fast = self._clock() - self._down_since, self._failed_fast
        logger.warning(
            "%s answers again after %.1f s; %d calls failed fast meanwhile", self.name, down_for, failed_fast
        )

    def failed(self, error: BaseException) -> None:
        with self._lock:
            now = self._clock()
            was_closed = self._open_until is None
            self._open_until = now + self.backoff
            if was_closed:
                self._down_since, self._failed_fast = now, 0
        if was_closed:
            logger.error(
                "%s unreachable (%s: %s): failing fast, probing every %s s",
                self.name,
                type(error).__name__,
                error,
                self.backoff,
            )

    @property
    def is_open(self) -> bool:
        return self._open_until is not None


# Pool (or cluster client) -> breakers by name: one, or one per cluster node.
_breakers: "weakref.WeakKeyDictionary[object, dict[str, Breaker]]" = weakref.WeakKeyDictionary()
_breakers_lock = threading.Lock()


def redis_breaker(client, key: str | bytes | None = None) -> Breaker:
    """The breaker of the Redis connection pool behind `client`; on Redis
    Cluster, of the master serving `key`'s slot (of the whole cluster for
    calls that name no key or several slots). Raises SlotNotCoveredError
    while no master serves the slot, as the call would."""
    pool = getattr(client, "connection_pool", client)
    if key is not None and is_cluster(client):
        name = f"Redis Cluster node {client.get_node_from_key(key).name}"
    else:
        name = _redis_name(client)
    named = _breakers.get(pool)
    breaker = named.get(name) if named is not None else None
    if breaker is None:
        with _breakers_lock:
            named = _breakers.setdefault(pool, {})
            breaker = named.get(name)
            if breaker is None:
                breaker = named[name] = Breaker(name, backoff=settings.REDIS_DOWN_BACKOFF_SECONDS)
    return breaker


def _redis_name(client) -> str:
    """What the breaker's log lines call this Redis: its address, or on a
    cluster the node it was configured with."""
    if is_cluster(client):
        first = client.nodes_manager.startup_nodes
        return f"Redis Cluster {next(iter(first), 'redis')}"
    kwargs = connection_settings(client)
    return "Redis " + f"{kwargs.get('host', 'redis')}:{kwargs.get('port', '')}".rstrip(":")


# While the default cache's Redis client cannot even be made.
_no_client = Breaker("Redis (REDIS_URL)", backoff=1.0)


class _CacheBreaker(threading.local):
    cache = None
    client = None
    breaker = None


_cache_breaker = _CacheBreaker()


def cache_breaker(key: str | None = None) -> Breaker | None:
    """The breaker of the default cache's Redis (on Redis Cluster, of the
    node serving the cache key `key`); None when the cache is not on Redis
    (the embedded default). The client is looked up once per cache object:
    Django's caches are per thread."""
    cache, local = caches["default"], _cache_breaker
    if local.cache is not cache:
        get_client = getattr(getattr(cache, "client", None), "get_client", None)
        if get_client is None:
            local.cache, local.client, local.breaker = cache, None, None
            return None
        _no_client.backoff = settings.REDIS_DOWN_BACKOFF_SECONDS
        if not _no_client.allow():
            return _no_client
        try:
            client = get_client(write=True)
        except REDIS_UNAVAILABLE as error:
            # The client cannot be made (no node of REDIS_URL answers): callers
            # fail fast on this breaker until it lets a call try again.
            _no_client.failed(error)
            return _no_client
        _no_client.succeeded()
        local.cache, local.client, local.breaker = cache, client, redis_breaker(client)
    if key is None or local.client is None or not is_cluster(local.client):
        return local.breaker
    try:
        return redis_breaker(local.client, cache.make_key(key))
    except REDIS_UNAVAILABLE:  # no master serves the slot now: the call will fail too
        return local.breaker


def breakers_reset() -> None:
    """Forget every breaker (tests that start and stop Redis servers)."""
    with _breakers_lock:
        _breakers.clear()
