"""The one door to the upstream (any OpenAI-compatible server): the process's shared
``aiohttp`` session (one per event loop), and the translation of its failures into the
gateway's errors, done here and nowhere else: callers see ``ApplicationError`` subclasses and
``UpstreamStream``, never the HTTP client.

Only what the call needs is sent: the JSON body, ``Authorization`` with our upstream key (or
the caller's own provider key, BYOK) and our request id. The caller's credentials, cookies
and other headers never leave orgbilling, and no cookie an upstream sets is kept (one caller's
call must not carry another's).
"""

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from typing import Any

import aiohttp
from aiohttp.http_exceptions import ContentEncodingError

from billing.errors import (
    GatewayNotConfigured,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from billing.services.gateway_calls.config import max_call_seconds, setting
from orgbilling.errors import ApplicationError
from orgbilling.observability.metrics import count_upstream_error, waiting_on_upstream

logger = logging.getLogger(__name__)

# An idle connection is dropped after this long (httpx's default, which the gateway used before):
# no longer than the keep-alive of common servers (uvicorn's is 5 s, nginx's 75 s), so a
# connection is rarely reused just as the upstream closes it.
KEEPALIVE_SECONDS = 5.0
_CALL_TOO_LONG = "The call ran longer than the gateway allows; nothing was charged."


class _LoopSession:
    """The session of one event loop (connections belong to a loop), of at most
    ``LLM_UPSTREAM_MAX_CONNECTIONS`` connections, no proxy from the environment, no cookies.
    It is closed when its loop shuts its async generators down (``asyncio.run``, asgiref's
    loops and a uvicorn server told to exit all do before closing the loop): ``closer`` is an
    async generator started on the loop, so ``loop.shutdown_asyncgens()`` finalizes it, and its
    ``finally`` closes the session. A uvicorn process stopped by SIGTERM re-raises the signal once
    its requests are done and ends with its sockets: nothing is left open to warn about."""

    def __init__(self, limit: int) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=limit, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        self.closer = self._close_at_shutdown()

    async def _close_at_shutdown(self) -> AsyncGenerator[None]:
        try:
            yield
        finally:
            if _sessions.get(asyncio.get_running_loop()) is self:
                del _sessions[asyncio.get_running_loop()]
            await self.session.close()

    def abandon(self) -> None:
        """The loop was closed without finalizing its generators, so its connections can no
        longer be closed on it (their sockets go when collected): mark the session and its
        connector closed so neither warns."""
        connector = self.session.connector
        self.session.detach()
        if connector is not None:
            for _ in connector.close().__await__():  # nothing to wait for on a closed loop
                pass


_sessions: dict[asyncio.AbstractEventLoop, _LoopSession] = {}


async def session() -> aiohttp.ClientSession:
    """The process's shared session for the running event loop."""
    loop = asyncio.get_running_loop()
    shared = _sessions.get(loop)
    if shared is None:
        for old_loop in [known for known in list(_sessions) if known.is_closed()]:
            if (dead := _sessions.pop(old_loop, None)) is not None:  # loops of other threads too
                dead.abandon()
        shared = _sessions[loop] = _LoopSession(setting("LLM_UPSTREAM_MAX_CONNECTIONS"))
        await anext(shared.closer)  # registers it with the loop; it yields at once
    return shared.session


async def close_session() -> None:
    """Close this loop's session now (tests; a server shutting down does it by itself)."""
    shared = _sessions.get(asyncio.get_running_loop())
    if shared is not None:
        await shared.closer.aclose()


def _url(path: str) -> str:
    base = setting("LLM_UPSTREAM_BASE_URL")
    if not base:
        count_upstream_error("not_configured")
        raise GatewayNotConfigured()
    return f"{base.rstrip('/')}/{path}"


def _timeout() -> aiohttp.ClientTimeout:
    """``LLM_UPSTREAM_TIMEOUT_SECONDS`` for a free connection and for each read (the headers, then
    every chunk of the body), at most 10 s of it to connect. The request body is small and goes
    out within the call's overall limit (``max_call_seconds``)."""
    seconds: float = setting("LLM_UPSTREAM_TIMEOUT_SECONDS")
    return aiohttp.ClientTimeout(
        total=None, connect=seconds, sock_connect=min(seconds, 10.0), sock_read=seconds
    )


def _headers(*, request_id: str, provider_key: str | None) -> dict[str, str]:
    key = provider_key if provider_key is not None else setting("LLM_UPSTREAM_API_KEY")
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _kind(exc: aiohttp.ClientError) -> tuple[str, str]:
    """(``details.reason``, metric label) of a client failure. The reasons keep the names the
    gateway reported with httpx (operators and alerts know them): ``ConnectError``,
    ``ConnectTimeout``, ``ReadTimeout``, ``RemoteProtocolError``, ``ReadError``, ``DecodingError``.
    aiohttp tells neither a wait for a free connection from a slow connect (both
    ``ConnectTimeout``) nor a reset from a close in the middle of a body (both
    ``RemoteProtocolError``)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "ConnectTimeout", "timeout"
    if isinstance(exc, aiohttp.ServerTimeoutError):  # no byte within the read timeout
        return "ReadTimeout", "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "ConnectError", "connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        if isinstance(exc.__cause__, ContentEncodingError):
            return "DecodingError", "http"
        return "RemoteProtocolError", "connection"  # the body ended before its length or last chunk
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return "RemoteProtocolError", "connection"  # closed before answering; not HTTP at all
    if isinstance(exc, aiohttp.ClientOSError):
        return "ReadError", "connection"
    return "NetworkError", "connection"


def failure(exc: aiohttp.ClientError) -> ApplicationError:
    """A client failure as the gateway's error: a timeout is 504, anything else 502."""
    reason, kind = _kind(exc)
    count_upstream_error(kind)
    if kind == "timeout":
        return UpstreamTimeout(details={"reason": reason})
    return UpstreamError(details={"reason": reason})


def refusal(status: int, content: bytes, *, byok: bool) -> ApplicationError:
    """A non-2xx upstream answer. 5xx is 502. A 4xx is passed on (``upstream_rejected``),
    except an authentication failure with *our* key, which is our fault (502).

    The upstream's own error text stays in our log: it can name our key ("Incorrect API key
    provided: sk-…"), deployments or internal hosts. Callers get our code and the upstream's
    status; only a BYOK caller, whose key it was, also gets the provider's message."""
    upstream_error: Any = None
    with suppress(ValueError, AttributeError):
        upstream_error = json.loads(content).get("error")
    logger.warning("gateway: upstream answered %s: %.500r", status, upstream_error or content[:500])
    details: dict[str, Any] = {"upstream_status": status}
    message = upstream_error.get("message") if isinstance(upstream_error, dict) else None
    if byok:
        details["upstream_error"] = upstream_error
    if status >= 500 or (status in (401, 403) and not byok) or status < 400:
        count_upstream_error("status_5xx" if status >= 500 else "status_other" if status < 400 else "auth")
        return UpstreamError(details=details)
    count_upstream_error("rejected_4xx")
    return UpstreamRejected(
        f"The model provider rejected the request: {message}" if byok and isinstance(message, str) else None,
        status=status,
        details=details,
    )


def _too_long() -> UpstreamTimeout:
    count_upstream_error("timeout")
    return UpstreamTimeout(_CALL_TOO_LONG, details={"max_call_seconds": max_call_seconds()})


async def post_json(
    path: str, body: dict[str, Any], *, request_id: str, provider_key: str | None
) -> tuple[bytes, Any]:
    """POST and read the whole answer; returns its bytes and parsed JSON. Raises the
    gateway's upstream errors."""
    url = _url(path)
    shared = await session()
    try:
        with waiting_on_upstream():
            async with (
                asyncio.timeout(max_call_seconds()),
                shared.post(
                    url,
                    data=json.dumps(body).encode(),
                    headers=_headers(request_id=request_id, provider_key=provider_key),
                    timeout=_timeout(),
                    allow_redirects=False,
                ) as response,
            ):
                status, content = response.status, await response.read()
    except aiohttp.ClientError as exc:  # before TimeoutError: aiohttp's read timeout is one too
        raise failure(exc) from None
    except TimeoutError:
        raise _too_long() from None
    if status != 200:
        raise refusal(status, content, byok=provider_key is not None)
    try:
        return content, json.loads(content)
    except ValueError:
        count_upstream_error("invalid_response")
        raise UpstreamError("The model provider sent an answer that is not JSON.") from None


class UpstreamStream:
    """A 200 answer whose body is still to read (an SSE stream). ``chunks()`` yields its bytes as
    they arrive and raises the gateway's errors (``UpstreamError``, ``UpstreamTimeout``) when the
    upstream breaks off; ``aclose()`` gives the connection back (or closes it, if the body was
    not read to its end). The owner must ``aclose()`` it."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def chunks(self) -> AsyncIterator[bytes]:
        return _Chunks(self._response.content)

    async def aclose(self) -> None:
        self._response.release()


class _Chunks:
    """The body's bytes as they arrive (an iterator object, not a generator: nothing to
    finalize when the reader stops early)."""

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._read = content.readany

    def __aiter__(self) -> "_Chunks":
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._read()
        except aiohttp.ClientError as exc:
            raise failure(exc) from None
        if not chunk:
            raise StopAsyncIteration
        return chunk


async def open_stream(
    path: str, body: dict[str, Any], *, request_id: str, provider_key: str | None
) -> UpstreamStream:
    """POST and return the answer with its body still to read. Raises the gateway's upstream
    errors when it cannot be sent or is not a 200."""
    url = _url(path)
    shared = await session()
    try:
        with waiting_on_upstream():
            async with asyncio.timeout(max_call_seconds()):
                response = await shared.post(
                    url,
                    data=json.dumps(body).encode(),
                    headers={
                        **_headers(request_id=request_id, provider_key=provider_key),
                        "Accept": "text/event-stream",
                    },
                    timeout=_timeout(),
                    allow_redirects=False,
                )
    except aiohttp.ClientError as exc:
        raise failure(exc) from None
    except TimeoutError:
        raise _too_long() from None
    if response.status != 200:
        try:
            content = await response.read()
        except aiohttp.ClientError:
            content = b""
        finally:
            response.release()
        raise refusal(response.status, content, byok=provider_key is not None)
    return UpstreamStream(response)
