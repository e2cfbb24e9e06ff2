"""Failed authentications per client address: counted in Redis, refused with
429 past a limit.

A well-formed key costs a client nothing to make (its CRC32 checksum is
public) and costs us a lookup, so every failed authentication (a malformed,
unknown, revoked or expired key) counts against the client's address:

1. its counter for the current fixed window (FAILED_AUTH_WINDOW_SECONDS) goes
   up by one, in one script and one round trip (lua/count_failure.lua);
2. past FAILED_AUTH_LIMIT the failure answers 429 with Retry-After (the
   window's end) instead of 401, and this process remembers the address as
   refused until then;
3. while refused, the address's failures, and its keys that would need a
   database lookup, get 429 at once, without Redis or PostgreSQL. A key
   already cached keeps working: the limit is on guessing keys, not on the
   customers behind a shared address.

The address is REMOTE_ADDR or, behind TRUSTED_PROXY_COUNT proxies, the
X-Forwarded-For entry the outermost of them wrote (as allauth reads it for the
login limits); an IPv6 client counts by its /64, which one host can fill with
addresses. Redis unreachable: failures go uncounted (401s as before), and the
default cache's breaker (core.breaker), shared with the key context cache and
the limiter, spares each request the timeout and logs the outage once.
"""

import ipaddress
import logging
import math
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection
from redis.commands.core import Script
from redis.exceptions import RedisError

from core.breaker import cache_breaker
from core.redis_cluster import REDIS_UNAVAILABLE

from .exceptions import TooManyFailedAuthentications

logger = logging.getLogger(__name__)

COUNT_FAILURE = (Path(__file__).parent / "lua" / "count_failure.lua").read_text()
# Bytes, so no client is needed to encode it: the client is passed at each call.
_count_script = Script(None, COUNT_FAILURE.encode())
MAX_REFUSED_ADDRESSES = 10_000  # per process, so a flood of addresses stays bounded


def client_address(request) -> str:
    """The address a client's failures are counted under."""
    address = _forwarded_client(request) or request.META.get("REMOTE_ADDR", "")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _forwarded_client(request) -> str | None:
    """X-Forwarded-For's entry written by the outermost trusted proxy; the
    entries left of it are the client's own word, so they are never read.
    None without trusted proxies, or when the entry is not an address."""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return None
    entries = [entry.strip() for entry in forwarded.split(",")]
    # Fewer entries than proxies: the request skipped an outer proxy, and every
    # entry was written by one of ours.
    entry = entries[-proxies] if len(entries) >= proxies else entries[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None


def failure_counter_key(address: str, window: int) -> str:
    return f"apikeys:v1:auth-failures:{{{address}}}:{window}"


class FailedAuthentications:
    def __init__(self, clock=time.time):
        self._clock = clock
        self._refused: dict[str, float] = {}  # address -> refused until, epoch seconds

    def clear(self) -> None:
        self._refused = {}

    def refuse_if_refused(self, request) -> None:
        """Raise 429 when this process knows the request's address is over its limit."""
        if self._refused:  # nearly always empty: the hot path skips the address
            self._refuse_address_if_refused(client_address(request))

    def count(self, request) -> None:
        """Count a failed authentication of the request's address; raise 429
        when that makes (or already made) the address go over its limit."""
        address = client_address(request)
        self._refuse_address_if_refused(address)
        now = self._clock()
        window_seconds = settings.FAILED_AUTH_WINDOW_SECONDS
        window = math.floor(now / window_seconds)
        window_end = (window + 1) * window_seconds
        count = self._count(failure_counter_key(address, window), window_end - now)
        limit = settings.FAILED_AUTH_LIMIT
        if count is None or count <= limit:
            return
        if count == limit + 1:
            logger.warning(
                "%s failed authentications from %s within %s s: refused until the window ends",
                count,
                address,
                window_seconds,
            )
        self._remember_refused(address, window_end, now)
        raise TooManyFailedAuthentications(wait=max(window_end - now, 1))

    def _refuse_address_if_refused(self, address: str) -> None:
        until = self._refused.get(address)
        if until is None:
            return
        now = self._clock()
        if now < until:
            raise TooManyFailedAuthentications(wait=max(until - now, 1))
        self._refused.pop(address, None)

    def _remember_refused(self, address: str, until: float, now: float) -> None:
        if len(self._refused) >= MAX_REFUSED_ADDRESSES:
            self._refused = {known: end for known, end in self._refused.items() if end > now}
            if len(self._refused) >= MAX_REFUSED_ADDRESSES:
                self._refused = {}
        self._refused[address] = until

    def _count(self, key: str, seconds_left: float) -> int | None:
        """The window's count with this failure, or None when it cannot be counted."""
        if not settings.REDIS_URL:
            return _count_in_process(key, seconds_left)
        breaker = cache_breaker()
        if breaker is not None and not breaker.allow():
            return None
        ttl_ms = max(math.ceil(seconds_left * 1000), 1)
        try:
            count = _count_script(keys=[key], args=[ttl_ms], client=get_redis_connection("default"))
        except (RedisError, *REDIS_UNAVAILABLE) as error:
            if breaker is not None:
                breaker.failed(error)
            return None
        if breaker is not None:
            breaker.succeeded()
        return int(count)


def _count_in_process(key: str, seconds_left: float) -> int:
    """The embedded default (no REDIS_URL): the same count in this process's cache."""
    cache.add(key, 0, timeout=math.ceil(seconds_left))
    try:
        return cache.incr(key)
    except ValueError:  # the window ended between the two calls
        return 1


failed_authentications = FailedAuthentications()
