"""Prepared SQL for the per-request hot paths (the ledger's charges, the gateway's reads).

On this project's hardware the ORM spends about a millisecond building and compiling each
query (docs/benchmarks.md). The few statements that run on every metered call are written as
SQL, run on a server-side binding psycopg cursor so PostgreSQL plans each once per connection,
and turned back into model instances with ``Model.from_db`` (field converters applied), so
callers still get ordinary models.

With ``LEDGER_PREPARED_STATEMENTS`` off (a transaction-mode pooler older than pgbouncer 1.21,
or without ``max_prepared_statements``) they run on Django's cursor, unprepared.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Generic, TypeVar

import psycopg
import psycopg.errors
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Model
from psycopg_pool import PoolTimeout

from orgbilling.errors import DatabaseBusy, DatabaseTimeout, DatabaseUnavailable

M = TypeVar("M", bound=Model)


def prepared_cursor() -> Any:
    """A cursor on the default connection whose statements are prepared (see the module)."""
    if not settings.LEDGER_PREPARED_STATEMENTS:
        return connection.cursor()
    # What connection.cursor() does first: drop a connection that fails its health check
    # (CONN_HEALTH_CHECKS, e.g. the server restarted or killed it), then (re)connect.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    # Django opens connections with prepare_threshold=None (no prepared statements at all) and
    # binds parameters client-side, which never prepares. Re-enabling the threshold changes
    # nothing for Django's cursors; this server-binding cursor then plans each statement once.
    if raw.prepare_threshold is None:
        raw.prepare_threshold = 5
    return psycopg.Cursor(raw)


def execute(cursor: Any, sql: str, params: dict[str, Any]) -> None:
    """Run ``sql`` prepared. Errors come out as Django's (``OperationalError`` …) and mark the
    connection as having failed, as Django's own cursors do, so it is closed and replaced
    instead of failing every later call (and the API answers 503, not 500)."""
    if isinstance(cursor, psycopg.Cursor):
        with connection.wrap_database_errors:
            cursor.execute(sql, params, prepare=True)
    else:
        cursor.execute(sql, params)


class Columns(Generic[M]):
    """A model's columns in a SELECT (under a table alias), and the instance from a row."""

    def __init__(self, model: type[M], alias: str) -> None:
        self.model = model
        self.alias = alias

    @cached_property
    def _fields(self) -> list[Any]:
        return list(self.model._meta.concrete_fields)

    @cached_property
    def sql(self) -> str:
        return ", ".join(f'{self.alias}."{field.column}"' for field in self._fields)

    @property
    def width(self) -> int:
        return len(self._fields)

    def build(self, values: tuple[Any, ...] | list[Any]) -> M:
        converted = [
            field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
            for field, value in zip(self._fields, values, strict=True)
        ]
        return self.model.from_db(connection.alias, [field.attname for field in self._fields], converted)


def fetch_instances(sql: str, params: dict[str, Any], *columns: Columns[Any]) -> list[tuple[Any, ...]]:
    """Run a SELECT of ``columns`` (in that order) and build the instances of every row."""
    with prepared_cursor() as cursor:
        execute(cursor, sql, params)
        rows = cursor.fetchall()
    result = []
    for row in rows:
        instances, start = [], 0
        for spec in columns:
            instances.append(spec.build(row[start : start + spec.width]))
            start += spec.width
        result.append(tuple(instances))
    return result


# What a Celery task retries (with backoff): the database was briefly unreachable, chose us as a
# deadlock victim, or refused us in time — pool, lock and statement timeouts all surface as
# ``OperationalError`` — or our own 503 for one of these. Each rolled its transaction back.
TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DatabaseUnavailable)


def database_refusal(exc: BaseException) -> DatabaseUnavailable | None:
    """The 503 that answers a database failure, or None when ``exc`` is not one.

    Django wraps the driver's errors (``OperationalError``/``InterfaceError``) and keeps the
    original as ``__cause__``: a pool with no free connection within ``DB_POOL_TIMEOUT`` and a
    lock wait past ``lock_timeout`` are contention (``database_busy``, retry in a second); a
    statement past ``statement_timeout`` ran too long (``database_timeout``); anything else
    means the database cannot be reached (``service_unavailable``). Nothing was written in any
    case: the transaction was rolled back.
    """
    if isinstance(exc, DatabaseUnavailable):
        return exc
    if not isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return None
    cause = exc if isinstance(exc, PoolTimeout) else exc.__cause__
    if isinstance(cause, PoolTimeout):
        return DatabaseBusy(
            f"No database connection became free within {settings.DB_POOL_TIMEOUT:g} s; try again."
        )
    if isinstance(cause, psycopg.errors.LockNotAvailable):
        return DatabaseBusy("The records are busy (a lock was not granted in time); nothing was changed.")
    if isinstance(cause, psycopg.errors.QueryCanceled):
        return DatabaseTimeout()
    return DatabaseUnavailable()


def process_statement_timeout() -> int:
    """The ``statement_timeout`` (ms; 0 = none) this process's connections open with
    (``orgbilling/settings/database.py``)."""
    if settings.PROCESS_ROLE == "web":
        return int(settings.DB_STATEMENT_TIMEOUT_MS)
    if settings.PROCESS_ROLE == "worker":
        return int(settings.DB_WORKER_STATEMENT_TIMEOUT_MS)
    return 0


@contextmanager
def report_timeout(milliseconds: int | None = None) -> Iterator[None]:
    """Run the reads inside (reports: analytics, exports, dashboards, reconciliation) in a
    transaction of their own under a longer ``statement_timeout``; the process's own limit
    applies again afterwards. By default ``DB_REPORT_STATEMENT_TIMEOUT_MS``, but never shorter
    than the process's limit (a Celery worker keeps its longer one) and no limit where the
    process has none (commands); ``milliseconds`` sets it exactly (0 = none)."""
    timeout: int | None = None  # None: leave the connection's limit alone
    if milliseconds is not None:
        timeout = int(milliseconds)
    elif own := process_statement_timeout():
        timeout = max(int(settings.DB_REPORT_STATEMENT_TIMEOUT_MS), own)
    with transaction.atomic():
        if timeout is not None:
            with connection.cursor() as cursor:
                # Transaction-local (is_local): a pooled connection goes back with its own limit.
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout)])
        yield
