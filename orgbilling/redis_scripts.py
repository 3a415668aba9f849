"""Lua scripts on the shared cache's Redis (``CACHES["default"]`` with ``orgbilling.cache.RedisCache``):
one round trip (EVALSHA, through redis-py's ``register_script``) from a thread or from the event
loop, against the same server, key prefix and version as Django's cache, so both count the same
keys.

Both paths are behind the cache's circuit breaker (``orgbilling.cache``): after a failure every
call fails at once with ``CacheUnavailable`` until ``retry_after_failure`` has passed. The loop's
client (``redis.asyncio``, one per event loop) has the sync client's options: the same
``socket_connect_timeout`` and ``socket_timeout`` (each read; a read that times out drops its
connection) and no retries, so a hung Redis costs a call on the loop what it costs one on a
thread, once per ``retry_after_failure``; the loop itself never waits. Callers catch
``CACHE_ERRORS`` and decide what a failure means, as with the cache.
"""

import asyncio
import re
import weakref
from collections.abc import Sequence
from typing import Any, cast

import redis
import redis.asyncio
from django.core.cache import caches
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.commands.core import AsyncScript, Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orgbilling.cache import BreakerRedisCacheClient, RedisCache

# OPTIONS of the Django cache that are not redis-py connection options (or are sync-only).
_NOT_ASYNC_OPTIONS = {"retry_after_failure", "serializer", "pool_class", "parser_class"}


class _Backend:
    """The default cache's configuration, built once per process (Django's own cache objects are
    per thread and per async context; this one is shared, with one connection pool)."""

    def __init__(self) -> None:
        backend = caches.create_connection("default")
        assert isinstance(backend, RedisCache), "Redis scripts need orgbilling.cache.RedisCache"
        self.cache = backend
        self.client = cast(BreakerRedisCacheClient, backend._cache)
        params = caches.settings["default"]
        location = params["LOCATION"]  # as Django's RedisCache splits it; it writes to the first
        self.server = (re.split("[;,]", location) if isinstance(location, str) else location)[0]
        options = params.get("OPTIONS", {})
        options = {k: v for k, v in options.items() if k not in _NOT_ASYNC_OPTIONS}
        self.async_options = options
        self.loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def async_client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self.loops.get(loop)
        if client is None:  # redis.asyncio connections belong to the loop that opened them
            pool = redis.asyncio.ConnectionPool.from_url(self.server, **self.async_options)
            client = self.loops[loop] = redis.asyncio.Redis(connection_pool=pool)
        return client


_backend: _Backend | None = None


def _shared() -> _Backend:
    global _backend
    if _backend is None:
        _backend = _Backend()
    return _backend


@receiver(setting_changed)
def _caches_changed(*, setting: str, **kwargs: Any) -> None:
    global _backend
    if setting == "CACHES":
        _backend = None


def on_redis(cache_settings: dict[str, Any]) -> bool:
    """``CACHES["default"]`` (``cache_settings``) is the project's Redis cache."""
    return bool(cache_settings["BACKEND"] == "orgbilling.cache.RedisCache")


def cache_key(key: str) -> str:
    """``key`` as Django's cache names it in Redis (``KEY_PREFIX``, ``VERSION``, ``KEY_FUNCTION``)."""
    return str(_shared().cache.make_key(key))


class RedisScript:
    """One Lua script; ``run`` from a thread, ``arun`` on the event loop. ``keys`` are cache
    keys as the code names them (``cache_key`` applied here)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._script: Script | None = None
        self._async_script: AsyncScript | None = None

    def run(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        backend = _shared()
        breaker = backend.client.breaker
        breaker.check()
        client = backend.client.get_client(write=True)
        if self._script is None:
            self._script = client.register_script(self.source)
        try:
            result = self._script(keys=[backend.cache.make_key(k) for k in keys], args=args, client=client)
        except (RedisConnectionError, RedisTimeoutError) as error:
            breaker.trip(error)
            raise
        breaker.succeeded()
        return result

    async def arun(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        backend = _shared()
        breaker = backend.client.breaker
        breaker.check()
        client = backend.async_client()
        if self._async_script is None:
            self._async_script = client.register_script(self.source)
        try:
            result = await self._async_script(
                keys=[backend.cache.make_key(k) for k in keys], args=args, client=client
            )
        except (RedisConnectionError, RedisTimeoutError) as error:
            breaker.trip(error)
            raise
        breaker.succeeded()
        return result
