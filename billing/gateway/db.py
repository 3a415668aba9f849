"""Running the gateway's database work off the event loop.

Every unit (authenticate + reserve, settle, release) is one synchronous function that opens
and ends its own transactions, run on a small dedicated thread pool whose threads keep their
connections as ``CONN_MAX_AGE`` allows (Django's per-request thread under ASGI would open a new
connection for every call). No transaction or row lock ever spans an ``await``.
"""

import asyncio
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from threading import Lock, local
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection

from billing.services.gateway_calls.config import setting
from orgbilling.db import database_refusal

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
_executor_lock = Lock()
_background: set["asyncio.Task[Any]"] = set()
_thread_state = local()
TIDY_INTERVAL_SECONDS = 1.0


def _db_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=setting("LLM_GATEWAY_DB_THREADS"), thread_name_prefix="llm-gateway-db"
            )
        return _executor


def _tidy_connections() -> None:
    """What Django does at the end of a request (close a connection that failed or is past
    ``CONN_MAX_AGE``; with ``CONN_HEALTH_CHECKS`` the next use pings it first), done at most
    once a second per thread unless the connection saw an error or must not persist."""
    now = time.monotonic()
    if (
        connection.errors_occurred
        or connection.settings_dict.get("CONN_MAX_AGE", 0) == 0
        or now - getattr(_thread_state, "tidied_at", 0.0) >= TIDY_INTERVAL_SECONDS
    ):
        close_old_connections()
        _thread_state.tidied_at = now


def _unit(func: Callable[P, R]) -> Callable[P, R]:
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        finally:
            _tidy_connections()

    return run


async def run_db(func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``func`` on the gateway's database threads. A database failure (no pooled
    connection in time, a lock or statement timeout, the server gone) comes out as the 503
    ``ApplicationError`` the REST API answers with (``orgbilling.db.database_refusal``)."""
    try:
        return await sync_to_async(_unit(func), thread_sensitive=False, executor=_db_executor())(
            *args, **kwargs
        )
    except Exception as exc:
        refusal = database_refusal(exc)
        if refusal is None or refusal is exc:
            raise
        raise refusal from exc


def spawn(coro: Coroutine[Any, Any, R]) -> "asyncio.Task[R]":
    """A task that runs to its end even if the request that started it is cancelled (the
    client went away): money is settled or released whatever the client does."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def finish(coro: Coroutine[Any, Any, R]) -> R:
    """Await ``coro`` to its end: a cancellation of the caller does not reach it."""
    return await asyncio.shield(spawn(coro))
