"""The request id: one per request, carried by the response, every log line of the request,
every audit event it writes and (in the gateway) its ledger rows.

A caller's ``X-Request-Id`` is kept when it is 1-128 characters of ``[A-Za-z0-9._:-]``;
otherwise, or when absent, a new UUID4 is used. The id lives in a context variable, so it
follows the request into sync views run on threads under ASGI, the gateway's database
threads (``sync_to_async`` copies the context) and the tasks a request spawns.
"""

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from orgbilling.middleware import RequestResponseMiddleware

HEADER = "X-Request-Id"
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_current: ContextVar[str | None] = ContextVar("orgbilling_request_id", default=None)


def accepted_request_id(value: str | None) -> str:
    """The caller's id when it is valid, else a new UUID4."""
    if value is not None and _VALID.fullmatch(value):
        return value
    return str(uuid.uuid4())


def current_request_id() -> str | None:
    """The id of the request being served here, if any."""
    return _current.get()


def request_id_of(request: HttpRequest) -> str:
    """The request's id (set by ``RequestIdMiddleware``); a new one if it went around it."""
    request_id = getattr(request, "request_id", None)
    if isinstance(request_id, str):
        return request_id
    return current_request_id() or str(uuid.uuid4())


def bind_request_id(request_id: str) -> None:
    """From here on, ``current_request_id()`` and every log line carry ``request_id``."""
    _current.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)


def clear_request_id(**_: Any) -> None:
    """The request is over (``request_finished``, once the response is closed)."""
    _current.set(None)
    structlog.contextvars.unbind_contextvars("request_id")


@contextmanager
def bound_request_id(request_id: str) -> Iterator[None]:
    """The request id for work done outside a request on its behalf (a script, a test)."""
    bind_request_id(request_id)
    try:
        yield
    finally:
        clear_request_id()


class RequestIdMiddleware(RequestResponseMiddleware):
    """Outermost middleware of the site and of the gateway: assigns the id, binds it for the
    request, and sets ``X-Request-Id`` on every response (errors included). Sync and async
    (on the event loop under ASGI: it touches only the request and response).

    The id stays bound until ``request_finished`` (connected in ``apps.py``), so the lines
    Django logs after the middleware (``django.request``'s 4xx/5xx) and a streamed body's carry
    it too. Under ASGI each request runs in a task with its own context anyway; under WSGI
    the thread's context is cleared when the server closes the response."""

    def before(self, request: HttpRequest) -> str:
        return _assign(request)

    def after(self, request: HttpRequest, response: HttpResponseBase, state: Any) -> HttpResponseBase:
        response[HEADER] = state
        return response


def _assign(request: HttpRequest) -> str:
    request_id = accepted_request_id(request.headers.get(HEADER))
    request.request_id = request_id  # type: ignore[attr-defined]
    bind_request_id(request_id)
    return request_id
