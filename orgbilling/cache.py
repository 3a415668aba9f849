"""The shared cache (``CACHES["default"]``: Redis in production) and what a failure of it means.

Nothing that moves money depends on the cache: idempotency keys, request ids and every balance
live in PostgreSQL. What does use it — rate limits, plan quotas, a few lookups cached to spare
a call to another service — decides for itself what a failed cache call means (README, "When
Redis is down"; docs/decisions.md): it catches ``CACHE_ERRORS``, or reads and writes through
``optional_get``/``optional_set``/``optional_add`` when the cache is only an optimisation.

``RedisCache`` is Django's with short socket timeouts (settings) and a circuit breaker: after a
connection failure or a timeout, the server is not tried again for ``retry_after_failure``
seconds (``CACHE_RETRY_AFTER_SECONDS``) and every call fails at once with ``CacheUnavailable``.
A Redis that hangs then costs one timeout per process per interval, not one per cache call;
once it answers again it is used again, with no restart.
"""

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# What a cache call raises when the cache cannot be used (Redis down, hung, refusing us).
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
# How often one consumer logs that the cache failed it, at most (a log line per request
# during an outage would drown everything else).
FAILURE_LOG_INTERVAL_SECONDS = 60.0


class CacheUnavailable(RedisConnectionError):
    """The cache server failed a moment ago and is not tried again yet."""


class _Breaker:
    """Open for ``retry_after`` seconds after a failure; shared by every thread of a process."""

    def __init__(self, location: str, retry_after: float) -> None:
        self.location = location
        self.retry_after = retry_after
        self.open_until = 0.0
        self.tripped = False

    def check(self) -> None:
        if self.open_until and time.monotonic() < self.open_until:
            raise CacheUnavailable(f"the cache failed less than {self.retry_after:g} s ago; not retried yet")

    def trip(self, error: Exception) -> None:
        if not self.tripped:
            logger.warning(
                "cache %s unavailable (%s: %s); skipping it for %g s at a time until it answers",
                self.location,
                type(error).__name__,
                error,
                self.retry_after,
            )
        self.tripped = True
        self.open_until = time.monotonic() + self.retry_after

    def succeeded(self) -> None:
        if self.tripped:
            self.tripped = False
            self.open_until = 0.0
            logger.warning("cache %s answers again", self.location)


_breakers: dict[tuple[str, ...], _Breaker] = {}
_breakers_lock = threading.Lock()


def _breaker(servers: list[str], retry_after: float) -> _Breaker:
    # Django keeps one cache object per thread; the breaker is per process and server.
    key = tuple(servers)
    with _breakers_lock:
        if key not in _breakers:
            _breakers[key] = _Breaker(",".join(_without_password(s) for s in servers), retry_after)
        return _breakers[key]


def _without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


class BreakerRedisCacheClient(RedisCacheClient):
    def __init__(self, servers: list[str], *, retry_after_failure: float = 0.0, **options: Any) -> None:
        super().__init__(servers, **options)
        self.breaker = _breaker(servers, retry_after_failure)


def _guarded(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def call(self: BreakerRedisCacheClient, *args: Any, **kwargs: Any) -> Any:
        self.breaker.check()
        try:
            result = operation(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as error:
            self.breaker.trip(error)
            raise
        self.breaker.succeeded()
        return result

    return call


for _name in (
    "add",
    "get",
    "set",
    "touch",
    "delete",
    "get_many",
    "has_key",
    "incr",
    "set_many",
    "delete_many",
    "clear",
):
    setattr(BreakerRedisCacheClient, _name, _guarded(getattr(RedisCacheClient, _name)))


class RedisCache(DjangoRedisCache):
    """Django's Redis cache behind the circuit breaker above. ``OPTIONS``: redis-py's
    (``socket_connect_timeout``, ``socket_timeout``…) and ``retry_after_failure`` (seconds)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = BreakerRedisCacheClient


# The cache as an optimisation: unavailable means a miss, and nothing is stored ---------------

_last_logged: dict[str, float] = {}


def report_cache_failure(consumer: str, error: Exception, consequence: str) -> None:
    """Log at WARNING, at most once a minute per consumer, that the cache failed it and what
    it did instead."""
    now = time.monotonic()
    if now - _last_logged.get(consumer, -FAILURE_LOG_INTERVAL_SECONDS) >= FAILURE_LOG_INTERVAL_SECONDS:
        _last_logged[consumer] = now
        logger.warning(
            "%s: cache unavailable (%s: %s); %s", consumer, type(error).__name__, error, consequence
        )


def optional_get(key: str, *, consumer: str) -> Any:
    """``cache.get(key)``, or None (a miss) when the cache is unavailable."""
    try:
        return cache.get(key)
    except CACHE_ERRORS as error:
        report_cache_failure(consumer, error, "reading from the source instead")
        return None


def optional_set(key: str, value: Any, timeout: float | None, *, consumer: str) -> None:
    """``cache.set``; nothing is stored when the cache is unavailable."""
    try:
        cache.set(key, value, timeout)
    except CACHE_ERRORS as error:
        report_cache_failure(consumer, error, "not cached")


def optional_add(key: str, value: Any, timeout: float | None, *, consumer: str) -> bool:
    """``cache.add``: True if the key was added; False when it existed or the cache is
    unavailable (so a guard built on it refuses while the cache is down)."""
    try:
        return bool(cache.add(key, value, timeout))
    except CACHE_ERRORS as error:
        report_cache_failure(consumer, error, "treated as already present")
        return False
