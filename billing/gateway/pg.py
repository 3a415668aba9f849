"""The gateway's hot route on psycopg's async connection pool, on the event loop.

The common admission and settlement are one SQL function call each (``ledger_hold``,
``ledger_settle``); run here they need no thread hand-off. Everything else (a cache miss, a
refusal to explain, a replay, a release) still runs on the gateway's database threads
(``billing.gateway.db.run_db``) with Django's connections.

One pool per event loop (a process serves on one loop; tests start more), opened on first use,
of at most ``LLM_GATEWAY_DB_POOL_SIZE`` connections (a term of its own in the connection budget,
``DB_CONNECTION_BUDGET["gateway"]``), in autocommit mode, with the connection parameters and
session settings of the process's Django connections (``statement_timeout``, ``lock_timeout``,
``application_name``), ``DB_POOL_TIMEOUT`` to wait for a connection and
``DB_POOL_RECONNECT_TIMEOUT`` to find a restarted server again. A failure comes out as the 503
``DatabaseUnavailable`` the threads answer with (``orgbilling.db.database_refusal``); a
connection that failed is discarded by the pool.

A connection the server ended while it sat in the pool (a restart, a failover,
``pg_terminate_backend``, an idle timeout) is discarded when it is taken, before a call is sent on
it (``_still_open``): an idle connection has nothing to read unless the server closed it, so a
``select`` with no wait tells, without a round trip.
"""

import asyncio
import select
import weakref
from typing import Any

import psycopg
import psycopg.errors
from django.conf import settings
from django.db import OperationalError, connection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from billing.ledger.holds import NOT_APPLIED_MESSAGE
from billing.ledger.sql import NotApplied
from billing.services.gateway_calls.config import setting
from orgbilling.db import database_refusal
from orgbilling.errors import DatabaseUnavailable

_pools: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool]" = (
    weakref.WeakKeyDictionary()
)


def connection_parameters() -> dict[str, Any]:
    """What Django's connections open with (server, role, ``options``), for psycopg directly."""
    params = dict(connection.get_connection_params())
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    params["autocommit"] = True
    params["prepare_threshold"] = 5  # the calls below ask for preparation themselves
    return params


class ConnectionEnded(psycopg.OperationalError):
    """The server closed a connection while it was idle in the pool."""


async def _still_open(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check at each checkout: a connection closed here is replaced by the pool, and
    the caller given another."""
    if not conn.closed:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
        if not readable:
            return
        # Its termination notice, or the end of the stream: nothing else comes unasked.
        await conn.close()
    raise ConnectionEnded("the server ended the idle connection")


def _pool() -> AsyncConnectionPool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = AsyncConnectionPool(
            kwargs=connection_parameters(),
            min_size=1,
            max_size=setting("LLM_GATEWAY_DB_POOL_SIZE"),
            timeout=settings.DB_POOL_TIMEOUT,
            max_idle=settings.DB_POOL_MAX_IDLE_SECONDS,
            max_lifetime=settings.DB_POOL_MAX_LIFETIME_SECONDS,
            reconnect_timeout=settings.DB_POOL_RECONNECT_TIMEOUT,
            name="orgbilling-gateway",
            check=_still_open,
            open=False,
        )
        _pools[loop] = pool
    return pool


def refusal(error: BaseException) -> DatabaseUnavailable | None:
    """The 503 for a driver or pool failure, as ``database_refusal`` answers Django's."""
    if isinstance(error, PoolTimeout):
        return database_refusal(error)
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        wrapped = OperationalError(str(error))
        wrapped.__cause__ = error
        return database_refusal(wrapped)
    return None


async def call_function(sql: str, params: dict[str, Any]) -> tuple[Any, ...]:
    """Run one prepared call of a ledger function and return its row. ``NotApplied`` when the
    function rolled its work back (``RAISE``); ``DatabaseUnavailable`` when the database failed."""
    pool = _pool()
    try:
        if pool.closed:
            await pool.open(wait=False)
        async with pool.connection() as conn:
            cursor = await conn.execute(sql, params, prepare=True)
            row = await cursor.fetchone()
    except psycopg.errors.RaiseException as error:
        if NOT_APPLIED_MESSAGE in str(error):
            raise NotApplied from None
        raise
    except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as error:
        answer = refusal(error)
        assert answer is not None
        raise answer from error
    assert row is not None  # a function with OUT parameters returns one row
    return tuple(row)


async def close_pools() -> None:
    """Close this loop's pool (tests; a server shutting down)."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()
