"""The one door to the upstream (any OpenAI-compatible server): the process's shared
``httpx.AsyncClient`` connections, and the translation of their failures into the gateway's
errors, done here and nowhere else.

Only what the call needs is sent: the JSON body, ``Authorization`` with our upstream key (or
the caller's own provider key, BYOK) and our request id. The caller's credentials, cookies
and other headers never leave orgbilling.
"""

import asyncio
import itertools
import json
import logging
import math
from contextlib import suppress
from typing import Any

import httpx

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

# httpcore spends CPU per request in proportion to the connections of its pool (several ms at
# 64 busy connections), so the process's connections are split over a few clients, used in turn.
POOL_SHARDS = 8


class _ClientPool:
    def __init__(self, limit: int) -> None:
        per_client = max(1, math.ceil(limit / POOL_SHARDS))
        self.clients = [
            httpx.AsyncClient(
                limits=httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client),
                follow_redirects=False,
                trust_env=False,
            )
            for _ in range(POOL_SHARDS)
        ]
        self._turn = itertools.cycle(self.clients)

    def next(self) -> httpx.AsyncClient:
        return next(self._turn)


_pools: dict[asyncio.AbstractEventLoop, _ClientPool] = {}


def client() -> httpx.AsyncClient:
    """A client of the process's shared pool for the running event loop (connections belong
    to a loop)."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        for old_loop in [known for known in _pools if known.is_closed()]:
            del _pools[old_loop]
        pool = _pools[loop] = _ClientPool(setting("LLM_UPSTREAM_MAX_CONNECTIONS"))
    return pool.next()


def _url(path: str) -> str:
    base = setting("LLM_UPSTREAM_BASE_URL")
    if not base:
        count_upstream_error("not_configured")
        raise GatewayNotConfigured()
    return f"{base.rstrip('/')}/{path}"


def _timeout() -> httpx.Timeout:
    seconds: float = setting("LLM_UPSTREAM_TIMEOUT_SECONDS")
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def _headers(*, request_id: str, provider_key: str | None) -> dict[str, str]:
    key = provider_key if provider_key is not None else setting("LLM_UPSTREAM_API_KEY")
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def failure(exc: httpx.HTTPError) -> ApplicationError:
    """An httpx failure as the gateway's error: a timeout is 504, anything else 502."""
    if isinstance(exc, httpx.TimeoutException):
        count_upstream_error("timeout")
        return UpstreamTimeout(details={"reason": type(exc).__name__})
    count_upstream_error("connection" if isinstance(exc, httpx.TransportError) else "http")
    return UpstreamError(details={"reason": type(exc).__name__})


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


async def post_json(
    path: str, body: dict[str, Any], *, request_id: str, provider_key: str | None
) -> tuple[bytes, Any]:
    """POST and read the whole answer; returns its bytes and parsed JSON. Raises the
    gateway's upstream errors."""
    url = _url(path)
    try:
        with waiting_on_upstream():
            async with asyncio.timeout(max_call_seconds()):
                response = await client().post(
                    url,
                    content=json.dumps(body),
                    headers=_headers(request_id=request_id, provider_key=provider_key),
                    timeout=_timeout(),
                )
    except httpx.HTTPError as exc:
        raise failure(exc) from None
    except TimeoutError:
        count_upstream_error("timeout")
        raise UpstreamTimeout(
            "The call ran longer than the gateway allows; nothing was charged.",
            details={"max_call_seconds": max_call_seconds()},
        ) from None
    if response.status_code != 200:
        raise refusal(response.status_code, response.content, byok=provider_key is not None)
    try:
        return response.content, response.json()
    except ValueError:
        count_upstream_error("invalid_response")
        raise UpstreamError("The model provider sent an answer that is not JSON.") from None


async def open_stream(
    path: str, body: dict[str, Any], *, request_id: str, provider_key: str | None
) -> httpx.Response:
    """POST and return the response with its body still to read (an SSE stream). The caller
    must ``aclose()`` it."""
    shared = client()
    request = shared.build_request(
        "POST",
        _url(path),
        content=json.dumps(body),
        headers={**_headers(request_id=request_id, provider_key=provider_key), "Accept": "text/event-stream"},
        timeout=_timeout(),
    )
    try:
        with waiting_on_upstream():
            response = await shared.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise failure(exc) from None
    if response.status_code != 200:
        try:
            content = await response.aread()
        except httpx.HTTPError:
            content = b""
        finally:
            await response.aclose()
        raise refusal(response.status_code, content, byok=provider_key is not None)
    return response
