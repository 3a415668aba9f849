"""/readyz: 200 when PostgreSQL, the migrations, the Redis cache and the broker are fine; 503
naming the part that is not, quickly, even when Redis is stopped."""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from scripts.free_port import free_port
from tests.billing.tasks.conftest import REDIS_SCRIPT


def redis_cache(url: str) -> dict:
    """The cache a ``redis://`` CACHE_URL configures (orgbilling/settings/base.py): Django's
    Redis cache behind our breaker, with short socket timeouts."""
    return {
        "default": {
            "BACKEND": "orgbilling.cache.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    }


def closed_port_url() -> str:
    """A loopback port nothing listens on: connections are refused by the kernel."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
def own_redis() -> Iterator[tuple[str, str]]:
    """A Redis of this test's own (the test stops it): (directory, URL)."""
    directory = tempfile.mkdtemp(prefix="orgbilling-readyz-redis-", dir="/tmp")
    started = subprocess.run(
        [str(REDIS_SCRIPT), "start", directory, str(free_port())], capture_output=True, text=True, timeout=900
    )
    assert started.returncode == 0, started.stderr
    try:
        yield directory, started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(REDIS_SCRIPT), "destroy", directory], capture_output=True, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.django_db
def test_ready_with_the_database_and_migrations_only(client, settings):
    settings.CELERY_BROKER_URL = ""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": {"status": "ok"}, "migrations": {"status": "ok"}},
    }
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_ready_when_redis_cache_and_broker_answer(client, settings, redis_url):
    settings.CACHES = redis_cache(redis_url)
    settings.CELERY_BROKER_URL = redis_url

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {
        "database": {"status": "ok"},
        "migrations": {"status": "ok"},
        "cache": {"status": "ok"},
        "broker": {"status": "ok"},
    }


@pytest.mark.django_db
def test_a_refused_cache_connection_is_named(client, settings, redis_url):
    settings.CACHES = redis_cache(closed_port_url())
    settings.CELERY_BROKER_URL = redis_url

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["cache"] == {"status": "unavailable", "error": "ConnectionError"}
    assert body["checks"]["broker"] == {"status": "ok"}
    assert body["checks"]["database"] == {"status": "ok"}


@pytest.mark.django_db
def test_a_refused_broker_connection_is_named(client, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.CELERY_BROKER_URL = closed_port_url()

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == {"status": "unavailable", "error": "ConnectionError"}


@pytest.mark.django_db
def test_a_stopped_redis_is_reported_quickly(client, settings, own_redis):
    directory, url = own_redis
    settings.CACHES = redis_cache(url)
    settings.CELERY_BROKER_URL = url
    assert client.get("/readyz").status_code == 200

    stopped = subprocess.run(
        [str(REDIS_SCRIPT), "stop", directory], capture_output=True, text=True, timeout=60
    )
    assert stopped.returncode == 0, stopped.stderr
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["cache"]["status"] == "unavailable"
    assert checks["broker"]["status"] == "unavailable"
    assert checks["database"] == {"status": "ok"}
    assert elapsed < settings.READINESS_TIMEOUT_SECONDS + 1


@pytest.mark.django_db
def test_a_hung_dependency_is_a_timeout_not_a_hung_probe(client, settings):
    # A server that accepts the connection and never answers (Redis would PONG).
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        settings.CACHES = redis_cache(f"redis://127.0.0.1:{server.getsockname()[1]}/0")
        settings.CELERY_BROKER_URL = ""
        settings.READINESS_TIMEOUT_SECONDS = 0.5
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    finally:
        server.close()

    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["status"] == "unavailable"
    assert response.json()["checks"]["cache"]["error"] in ("Timeout", "TimeoutError")
    assert elapsed < 2


@pytest.mark.django_db(transaction=True)
def test_an_unapplied_migration_is_named(client, settings):
    settings.CELERY_BROKER_URL = ""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    executor = MigrationExecutor(connection)
    latest = max(name for app, name in executor.loader.graph.leaf_nodes() if app == "billing")
    previous = executor.loader.graph.node_map[("billing", latest)].parents
    [target] = [key for key in (p.key for p in previous) if key[0] == "billing"]
    executor.migrate([target])  # roll billing's latest migration back
    try:
        response = client.get("/readyz")
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == {
        "status": "unavailable",
        "error": "UnappliedMigrations",
        "unapplied": [f"billing.{latest}"],
    }
    assert response.json()["checks"]["database"] == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_healthz_stays_a_cheap_liveness_check(client, settings):
    settings.CACHES = redis_cache(closed_port_url())  # readiness would fail; liveness does not look

    assert client.get("/healthz").status_code == 200
