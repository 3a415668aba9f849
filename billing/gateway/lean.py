"""The lean route: ``POST /api/v1/llm/chat/completions`` as a plain ASGI handler, without
Django's request handling, for the common call (an API key, a warm cache, no BYOK).

Django's ``ASGIHandler`` spools the body to a temporary file, sends ``request_started`` and
``request_finished`` (whose sync receivers hop to a thread), resolves the URL, runs the request
and a disconnect listener as two tasks, and relays a stream through a queue and the response's
generator (docs/benchmarks.md). Here the body is read from ``receive``, the request goes
through the same ``LLM_GATEWAY_MIDDLEWARE`` (request id, metrics and log line, input guard,
host check, HTTPS redirect, security headers, session and user, rate-limit headers), with
exceptions answered as Django answers them, to the same view code
(``views.chat_completion_on_loop``), and the response is written with ``send``: a JSON answer
as Django writes it, a stream by its relay's pump, straight from the upstream's reader.

Anything else goes to Django's route unchanged (``fallback``): another path or method, a
``Cookie`` (session callers and their CSRF check), ``X-Provider-Key`` (BYOK), no API key (a
Keycloak token, or none), a ``root_path``, a body over ``LLM_MAX_BODY_BYTES`` (replayed as
read), the cache off or not warm yet, quota counters the loop cannot reach (a cache other than
the process's or Redis), and a call the loop cannot admit
(``NotOnLoop``: the body is replayed and Django's route admits it on the threads).
``LLM_GATEWAY_LEAN_ROUTE`` turns the route off.

A disconnect (``http.disconnect`` from ``receive``) is told to the call (``CallState``) by a
listener task, as Django's cancellation does: a call not yet forwarded is released, a stream
stops relaying and drains. The call, its settlement and a stream's pump are tasks of their own
(``billing.gateway.db.spawn``), never the request's task, so nothing the client does can skip
a settlement.
"""

import asyncio
import io
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import suppress
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import resolve
from django.utils.module_loading import import_string

from billing.gateway import views
from billing.services.gateway_calls import cache as gateway_cache
from billing.services.gateway_calls.quotas import counted_on_loop
from organizations.services.api_keys import KEY_PREFIX
from orgbilling.observability.request_id import clear_request_id

CHAT_PATH = "/api/v1/llm/chat/completions"
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Coroutine[Any, Any, Message]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
Handler = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
_BEARER_KEY = b"bearer " + KEY_PREFIX.encode()


class _HandOver(Exception):
    """Django's route serves this request (raised through the lean route's middleware chain)."""


def _converting(handler: Handler) -> Handler:
    """Django's ``convert_exception_to_response``, letting ``_HandOver`` through."""

    async def inner(request: HttpRequest) -> HttpResponseBase:
        try:
            return await handler(request)
        except _HandOver:
            raise
        except Exception as exc:
            return await sync_to_async(response_for_exception, thread_sensitive=False)(request, exc)

    return inner


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` as if nothing had been read: ``messages`` first, then the rest."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class _Sink:
    """The stream's body, written by the relay's pump once the response has started."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._started = asyncio.Event()
        self._dropped = False
        self.closed = False

    def start(self) -> None:
        self._started.set()

    def drop(self) -> None:
        """The response that went out is not the stream's: the relay's writes fail."""
        self._dropped = True
        self._started.set()

    async def write(self, data: bytes) -> None:
        if not self._started.is_set():
            await self._started.wait()
        if self._dropped or self.closed:
            raise ConnectionError("the stream's response is not being written")
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def close(self) -> None:
        if self._dropped or self.closed:
            return
        self.closed = True
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})


class LeanChatRoute:
    """The gateway's ASGI application: the lean route for the calls it serves, ``fallback``
    (Django's gateway handler) for everything else."""

    def __init__(self, fallback: ASGIHandler) -> None:
        self.fallback = fallback
        self._match = resolve(CHAT_PATH)
        handler = _converting(self._view)
        for path in reversed(settings.LLM_GATEWAY_MIDDLEWARE):  # checked by the fallback handler
            handler = _converting(import_string(path)(handler))
        self._chain = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._eligible(scope)
        if limit is None:
            await self.fallback(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # gone before the request was read: nothing to do, as Django
            messages.append(message)
            size += len(message.get("body", b""))
            if size > limit:  # Django's route reads the rest and answers 413
                await self.fallback(scope, _replaying(messages, receive), send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        await self._serve(scope, body, receive, send)

    def _eligible(self, scope: Scope) -> int | None:
        """The body limit when the lean route serves this request, else None."""
        if (
            scope["type"] != "http"
            or scope["path"] != CHAT_PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
            or not settings.LLM_GATEWAY_LEAN_ROUTE
        ):
            return None
        limit = int(settings.LLM_MAX_BODY_BYTES)
        api_key = False
        for name, value in scope["headers"]:
            if name in (b"cookie", b"x-provider-key"):
                return None
            if name == b"content-length":
                try:
                    if int(value) > limit:
                        return None
                except ValueError:
                    return None
            elif name == b"x-api-key" or (name == b"authorization" and value[:11].lower() == _BEARER_KEY):
                api_key = True
        if not api_key or gateway_cache.known_view() is None or not counted_on_loop():
            return None
        return limit

    async def _serve(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        try:
            request = ASGIRequest(scope, io.BytesIO(body))
        except Exception:  # a path Django cannot decode, and the like: Django's route answers
            await self.fallback(scope, _replaying([_body_message(body)], receive), send)
            return
        state = views.CallState()
        sink = _Sink(send)
        request.lean_call = (state, sink)  # type: ignore[attr-defined]
        listener = asyncio.get_running_loop().create_task(receive())
        listener.add_done_callback(lambda done: _told(done, state))
        try:
            try:
                response = await self._chain(request)
            except _HandOver:
                await self.fallback(scope, _replaying(_after_body(body, listener), receive), send)
                return
            relay = state.relay
            if relay is None or not isinstance(response, StreamingHttpResponse):
                if relay is not None:
                    sink.drop()  # not the stream's answer: the relay drains and settles
                    relay.stop()
                with suppress(OSError):
                    await self.fallback.send_response(response, send)
                return
            with suppress(OSError):
                await send({"type": "http.response.start", "status": response.status_code,
                            "headers": _headers(response)})  # fmt: skip
            sink.start()
            # Until the pump has ended the response, or the client left (the pump goes on).
            await asyncio.wait((relay.pump, listener), return_when=asyncio.FIRST_COMPLETED)
            if relay.pump.done() and not sink.closed:
                with suppress(OSError):
                    await sink.close()  # the pump was cancelled (the server is shutting down)
        finally:
            listener.cancel()
            clear_request_id()

    async def _view(self, request: HttpRequest) -> HttpResponseBase:
        request.resolver_match = self._match  # as Django's URL resolution sets it (metrics' route)
        state, sink = request.lean_call  # type: ignore[attr-defined]
        try:
            return await views.chat_completion_on_loop(request, state, sink)
        except views.NotOnLoop:
            raise _HandOver() from None


def _told(listener: "asyncio.Task[Message]", state: views.CallState) -> None:
    if listener.cancelled() or listener.exception() is not None:
        return
    if listener.result()["type"] == "http.disconnect":
        state.client_gone()


def _body_message(body: bytes) -> Message:
    return {"type": "http.request", "body": body, "more_body": False}


def _after_body(body: bytes, listener: "asyncio.Task[Message]") -> list[Message]:
    """The messages Django's route must read: the body, and what the listener took, if anything."""
    messages = [_body_message(body)]
    if listener.done() and not listener.cancelled() and listener.exception() is None:
        messages.append(listener.result())
    else:
        listener.cancel()
    return messages


def _headers(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    """As ``ASGIHandler.send_response`` encodes them (a stream's answer sets no cookie)."""
    return [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
