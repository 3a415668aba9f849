"""Prometheus metrics, served at ``/metrics`` (``views.metrics``).

Counted in each process (prometheus-client): request latency per route, method and status
class; charges and refused charges by code (``charges.py``); the gateway's added latency and
upstream errors; webhook failures; the database pool's gauges. With several processes (gunicorn
workers), set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by them: every value is
then kept in files there and a scrape of any process adds them all up (see README).

Read from the database at scrape time, so they are right whichever process answers: credit
holds open / overdue / expired, and the last ledger reconciliation's drift count (recorded by
the Celery task in ``ReconciliationRun``).
"""

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from django.db import connections
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from orgbilling.middleware import RequestResponseMiddleware

logger = structlog.get_logger("orgbilling.requests")


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode (prometheus-client's own switch), if set."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")  # noqa: SIM112


if multiprocess_dir():
    # Before the first metric below writes its file: a worker or a Celery process may be the
    # first to start on a fresh directory.
    os.makedirs(multiprocess_dir() or "", exist_ok=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ADDED_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUEST_LATENCY = Histogram(
    "orgbilling_http_request_duration_seconds",
    "Time to answer a request (to the response headers), by URL pattern, method and status class.",
    ["route", "method", "status_class"],
    buckets=LATENCY_BUCKETS,
)
CHARGES = Counter(
    "orgbilling_charges",
    "Charges written to the ledger (deductions, settled holds); replays are not counted.",
    ["operation"],
)
CREDITS_CHARGED = Counter("orgbilling_credits_charged", "Credits charged by those charges.", ["operation"])
CHARGE_REFUSALS = Counter(
    "orgbilling_charge_refusals",
    "Charges and holds the ledger refused, and gateway calls refused by a plan quota, by error code.",
    ["operation", "code"],
)
GATEWAY_ADDED_LATENCY = Histogram(
    "orgbilling_gateway_added_latency_seconds",
    "Time a gateway call spent in orgbilling, less the time waiting on the upstream (to the "
    "response headers; for streams, to the upstream's first bytes).",
    ["endpoint"],
    buckets=ADDED_LATENCY_BUCKETS,
)
GATEWAY_UPSTREAM_ERRORS = Counter(
    "orgbilling_gateway_upstream_errors", "Failed or refused upstream calls, by kind.", ["kind"]
)
WEBHOOK_FAILURES = Counter(
    "orgbilling_webhook_failures",
    "Stripe/Lago webhooks stored but not processed (refused by a handler, or an unexpected error).",
    ["provider", "reason"],
)
DB_POOL_ENABLED = Gauge(
    "orgbilling_db_pool_enabled",
    "1 when the database alias uses a connection pool (psycopg_pool), else 0.",
    ["database"],
    multiprocess_mode="livemax",
)
DB_POOL_SIZE = Gauge(
    "orgbilling_db_pool_size", "Connections open in the pool.", ["database"], multiprocess_mode="livesum"
)
DB_POOL_MAX = Gauge(
    "orgbilling_db_pool_max_size", "The pool's maximum size.", ["database"], multiprocess_mode="livesum"
)
DB_POOL_IN_USE = Gauge(
    "orgbilling_db_pool_in_use", "Pool connections lent out.", ["database"], multiprocess_mode="livesum"
)
DB_POOL_WAITING = Gauge(
    "orgbilling_db_pool_waiting",
    "Requests waiting for a pool connection.",
    ["database"],
    multiprocess_mode="livesum",
)

# --- Requests -------------------------------------------------------------------------------

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROBE_ROUTES = frozenset({"healthz", "readyz", "metrics"})
UNMATCHED_ROUTE = "<unmatched>"


def route_of(request: HttpRequest) -> str:
    """The URL pattern that served the request, never the raw path (bounded cardinality)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED_ROUTE
    return str(match.route) or "/"


def _observe(request: HttpRequest, response: HttpResponseBase, seconds: float) -> None:
    route = route_of(request)
    method = request.method if request.method in METHODS else "other"
    status = response.status_code
    REQUEST_LATENCY.labels(route, method, f"{status // 100}xx").observe(seconds)
    publish_pool_stats()
    logger.log(
        10 if route in PROBE_ROUTES and status < 400 else 20,  # DEBUG / INFO
        "request finished",
        method=request.method,
        path=request.path,
        route=route,
        status=status,
        duration_ms=round(seconds * 1000, 2),
    )


class RequestMetricsMiddleware(RequestResponseMiddleware):
    """Times every request (inside ``RequestIdMiddleware``) and logs one line for it. Sync and
    async, no thread hop (the site chain and the gateway's on-loop chain alike)."""

    def before(self, request: HttpRequest) -> float:
        return time.perf_counter()

    def after(self, request: HttpRequest, response: HttpResponseBase, state: Any) -> HttpResponseBase:
        _observe(request, response, time.perf_counter() - state)
        return response


# --- Database pool --------------------------------------------------------------------------

POOL_PUBLISH_INTERVAL_SECONDS = 1.0
_pool_published_at = 0.0


def publish_pool_stats(*, force: bool = False) -> None:
    """Copy each alias' pool figures into the gauges (at most once a second unless forced; in
    multiprocess mode every process publishes its own and a scrape sums the live ones)."""
    global _pool_published_at
    now = time.monotonic()
    if not force and now - _pool_published_at < POOL_PUBLISH_INTERVAL_SECONDS:
        return
    _pool_published_at = now
    for alias in connections:
        try:
            pool = getattr(connections[alias], "pool", None)  # psycopg_pool.ConnectionPool or None
            stats = pool.get_stats() if pool is not None else None
        except Exception:  # a metric never fails a request
            logger.warning("database pool figures unavailable", database=alias, exc_info=True)
            continue
        DB_POOL_ENABLED.labels(alias).set(1 if stats is not None else 0)
        if stats is None:
            continue
        size = stats.get("pool_size", 0)
        DB_POOL_SIZE.labels(alias).set(size)
        DB_POOL_MAX.labels(alias).set(stats.get("pool_max", 0))
        DB_POOL_IN_USE.labels(alias).set(max(0, size - stats.get("pool_available", 0)))
        DB_POOL_WAITING.labels(alias).set(stats.get("requests_waiting", 0))


# --- Gateway --------------------------------------------------------------------------------


@dataclass
class _GatewayCall:
    started: float
    upstream_seconds: float = 0.0
    went_upstream: bool = False


_gateway_call: ContextVar[_GatewayCall | None] = ContextVar("orgbilling_gateway_call", default=None)


@contextmanager
def gateway_call(endpoint: str) -> Iterator[None]:
    """Times a gateway call; tasks it starts share the timer (they copy the context)."""
    call = _GatewayCall(started=time.perf_counter())
    token = _gateway_call.set(call)
    try:
        yield
    finally:
        _gateway_call.reset(token)
        if call.went_upstream:
            added = time.perf_counter() - call.started - call.upstream_seconds
            GATEWAY_ADDED_LATENCY.labels(endpoint).observe(max(0.0, added))


@contextmanager
def waiting_on_upstream() -> Iterator[None]:
    """Marks time spent waiting on the upstream within the current gateway call."""
    started = time.perf_counter()
    try:
        yield
    finally:
        call = _gateway_call.get()
        if call is not None:
            call.went_upstream = True
            call.upstream_seconds += time.perf_counter() - started


def count_upstream_error(kind: str) -> None:
    GATEWAY_UPSTREAM_ERRORS.labels(kind).inc()


def count_webhook_failure(*, provider: str, reason: str) -> None:
    WEBHOOK_FAILURES.labels(provider, reason).inc()


# --- Exposition -----------------------------------------------------------------------------


class _ThisProcess:
    """The process' own metrics (single-process mode)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


# Collectors that read figures at scrape time, registered by the apps (``billing.metrics``): the
# shared core names no app.
SCRAPE_COLLECTORS: list[Callable[[], Any]] = []


def register_scrape_collector(factory: Callable[[], Any]) -> None:
    """Add a collector (made anew for each scrape) to ``/metrics``; idempotent."""
    if factory not in SCRAPE_COLLECTORS:
        SCRAPE_COLLECTORS.append(factory)


def render_metrics() -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type."""
    publish_pool_stats(force=True)
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())  # type: ignore[arg-type]
    for factory in SCRAPE_COLLECTORS:
        registry.register(factory())
    return generate_latest(registry), CONTENT_TYPE_LATEST
