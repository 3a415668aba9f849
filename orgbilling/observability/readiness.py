"""``/readyz``: may this process take traffic? PostgreSQL answers, every migration is applied,
and the Redis cache and the Celery broker answer when they are configured.

Each check runs on a small thread pool and is given ``READINESS_TIMEOUT_SECONDS`` at most (the
Redis and broker clients also use socket timeouts that short), so a dependency that hangs is
reported as ``Timeout`` instead of holding the probe. Database checks use the thread's own
connection, closed (or returned to the pool) afterwards.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.utils.module_loading import import_string
from kombu import Connection as BrokerConnection
from redis.backoff import NoBackoff
from redis.retry import Retry

REDIS_SCHEMES = ("redis", "rediss", "unix")

_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok" if self.ok else "unavailable"}
        if self.error is not None:
            body["error"] = self.error
        return {**body, **self.details}


class UnappliedMigrations(Exception):
    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def _with_db_connection(check: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            check()
        finally:
            connections.close_all()  # this thread's connections only

    return run


def check_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_migrations() -> None:
    executor = MigrationExecutor(connections["default"])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise UnappliedMigrations([f"{migration.app_label}.{migration.name}" for migration, _ in plan])


def _ping_redis(url: str, timeout: float) -> None:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    finally:
        client.close()


def cache_servers() -> list[str]:
    """The Redis servers of ``CACHES["default"]`` (none when it is not Redis)."""
    cache: dict[str, Any] = settings.CACHES["default"]
    backend = import_string(str(cache.get("BACKEND", "")))
    if not (isinstance(backend, type) and issubclass(backend, RedisCache)):  # ours wraps Django's
        return []
    location = cache.get("LOCATION") or []
    servers = location.split(",") if isinstance(location, str) else list(location)
    return [server.strip() for server in servers if server.strip()]


def check_cache(timeout: float) -> None:
    for server in cache_servers():
        _ping_redis(server, timeout)


def check_broker(timeout: float) -> None:
    url: str = settings.CELERY_BROKER_URL
    if urlsplit(url).scheme in REDIS_SCHEMES:
        _ping_redis(url, timeout)
        return
    with BrokerConnection(url, connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=1, timeout=timeout)


def readiness_checks() -> dict[str, Callable[[], None]]:
    """The checks that apply to this configuration, by name."""
    timeout: float = settings.READINESS_TIMEOUT_SECONDS
    checks: dict[str, Callable[[], None]] = {
        "database": _with_db_connection(check_database),
        "migrations": _with_db_connection(check_migrations),
    }
    if cache_servers():
        checks["cache"] = lambda: check_cache(timeout)
    if settings.CELERY_BROKER_URL:
        checks["broker"] = lambda: check_broker(timeout)
    return checks


def run_readiness_checks() -> dict[str, CheckResult]:
    """Every check, concurrently; whatever has not finished within the timeout is ``Timeout``."""
    futures = {name: _executor.submit(check) for name, check in readiness_checks().items()}
    wait(futures.values(), timeout=settings.READINESS_TIMEOUT_SECONDS)
    results: dict[str, CheckResult] = {}
    for name, future in futures.items():
        if not future.done():
            future.cancel()  # still queued behind a hung check: never started
            results[name] = CheckResult(ok=False, error="Timeout")
            continue
        try:
            future.result()
        except UnappliedMigrations as unapplied:
            results[name] = CheckResult(
                ok=False, error="UnappliedMigrations", details={"unapplied": unapplied.names}
            )
        except Exception as exc:  # any failure of a dependency means "not ready"
            results[name] = CheckResult(ok=False, error=type(exc).__name__)
        else:
            results[name] = CheckResult(ok=True)
    return results
