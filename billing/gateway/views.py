"""The OpenAI-compatible endpoints (async views, served under ASGI).

Per call: authenticate → who pays → price the worst case → plan quota → hold (402 before
anything goes upstream) → forward → settle at the real cost from ``usage`` → answer with
``X-Cost-Incurred``, ``X-Credits-Remaining``, ``X-Org-Id`` and ``X-Request-Id``. An upstream
failure releases the hold (502/504, or the upstream's 4xx). A completion whose settlement the
database refused is still answered, with ``X-Settlement: pending``, and charged by the
background retry of ``billing.gateway.settlement``. Database work runs on the gateway's threads
(``billing.gateway.db``); only the upstream I/O is awaited on the loop.

Each call runs in its own task that the request awaits through ``asyncio.shield``: when the client
disconnects, Django cancels the request but the call still settles (a completion the upstream
produced is charged from its real usage; a call not yet forwarded is released). From its hold to
its settlement or release a call has an open record on disk
(``billing.services.gateway_calls.open_calls``), from which it is charged if the process dies
meanwhile.

``chat_completion_on_loop`` is the same call for the lean route (``billing.gateway.lean``): the
admission must be decided on the loop (else ``NotOnLoop``, and the lean route hands the request
to Django's), and a stream is written to the client by its relay (``RelaySink``).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import APIException

from billing.call_usage import fallback_usage
from billing.gateway import on_loop, upstream
from billing.gateway.admission import PROVIDER_KEY_HEADER, admit_chat, admit_image, authenticate
from billing.gateway.db import finish, run_db
from billing.gateway.metering import (
    ChatRequest,
    ImageRequest,
    completion_text_size,
    estimate_output_tokens,
    reported_reasoning,
    reported_usage,
)
from billing.gateway.responses import (
    JSON,
    SETTLEMENT_HEADER,
    cost_headers,
    credits_text,
    error_response,
    json_response,
    method_not_allowed,
)
from billing.gateway.selectors import model_list
from billing.gateway.settlement import Charge, Pending, settle
from billing.gateway.streaming import RelaySink, StreamRelay
from billing.services import DeductionResult
from billing.services.gateway_calls import open_calls
from billing.services.gateway_calls.holds import Admission
from orgbilling.errors import ApplicationError, DatabaseUnavailable, ValidationFailed
from orgbilling.observability.metrics import gateway_call

logger = logging.getLogger(__name__)

MAX_PROVIDER_KEY_LENGTH = 4096


class NotOnLoop(Exception):
    """The lean route's call could not be admitted on the loop (a cold cache, a read the cache
    does not have, a hold to explain): nothing was held; Django's route serves the request."""


class CallState:
    """What the request's task tells the call's task: the client went away."""

    def __init__(self) -> None:
        self.gone = False
        self.relay: StreamRelay | None = None

    def client_gone(self) -> None:
        self.gone = True
        if self.relay is not None:
            self.relay.stop()


async def _serve(
    run: Callable[[CallState], Awaitable[HttpResponseBase]], endpoint: str, state: CallState | None = None
) -> HttpResponseBase:
    state = state or CallState()
    try:
        with gateway_call(endpoint):  # the call's added latency (orgbilling_gateway_added_latency_seconds)
            return await finish(run(state))  # type: ignore[arg-type]
    except asyncio.CancelledError:
        state.client_gone()
        raise


def _provider_key(request: HttpRequest) -> str | None:
    """The caller's own provider key (BYOK), if they sent one."""
    raw = request.headers.get(PROVIDER_KEY_HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_PROVIDER_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(f"{PROVIDER_KEY_HEADER} must be a provider API key.")
    return key


def _admit_chat(request: HttpRequest, *, byok: bool) -> tuple[Admission, ChatRequest, dict[str, Any]]:
    admitted = admit_chat(request, byok=byok)
    open_calls.open_call(admitted[0])  # in flight: charged from there if this process dies
    return admitted


async def _admit_chat_on_loop(request: HttpRequest) -> tuple[Admission, ChatRequest, dict[str, Any]] | None:
    admitted = await on_loop.admit_chat(request)
    if admitted is not None:
        open_calls.open_call(admitted[0])  # a small write, not flushed (open_calls)
    return admitted


def _admit_image(request: HttpRequest, *, byok: bool) -> tuple[Admission, ImageRequest]:
    admission, image = admit_image(request, byok=byok)
    open_calls.open_call(admission, images=image.count)
    return admission, image


def _id_headers(admission: Admission) -> dict[str, str]:
    return {"X-Request-Id": admission.request_id, "X-Org-Id": admission.org_id or ""}


async def _release(admission: Admission) -> None:
    """Give the hold back: the call failed or never went upstream. With the database refusing,
    the hold stays until it expires and is released then; nothing is charged either way."""
    try:
        await run_db(open_calls.release_open_call, admission)
    except DatabaseUnavailable as refusal:
        logger.warning("gateway: releasing call %s refused (%s); released when the hold expires",
                       admission.request_id, refusal.code)  # fmt: skip


def _answer(content: bytes, admission: Admission, settled: DeductionResult | Pending | None) -> HttpResponse:
    headers = _id_headers(admission)
    if isinstance(settled, DeductionResult):
        headers = cost_headers(
            request_id=admission.request_id,
            org_id=admission.org_id,
            charged=settled.credits_charged,
            remaining=settled.remaining_credits,
        )
    elif isinstance(settled, Pending):
        # Charged once the database is back (billing.gateway.settlement); the balance is not known.
        headers |= {"X-Cost-Incurred": credits_text(settled.cost), SETTLEMENT_HEADER: "pending"}
    return HttpResponse(content, content_type=JSON, headers=headers)


async def _forward_json(
    admission: Admission, path: str, body: dict[str, Any], provider_key: str | None
) -> tuple[bytes, Any] | HttpResponse:
    """POST upstream; on failure release the hold and return the error answer."""
    try:
        return await upstream.post_json(
            path, body, request_id=admission.request_id, provider_key=provider_key
        )
    except ApplicationError as error:
        await _release(admission)
        return error_response(error, headers=_id_headers(admission))


async def _chat(request: HttpRequest, state: CallState, sink: RelaySink | None = None) -> HttpResponseBase:
    try:
        provider_key = _provider_key(request)
        admitted = await _admit_chat_on_loop(request) if provider_key is None else None
        if admitted is None and sink is not None:
            raise NotOnLoop()
        if admitted is None:
            admitted = await run_db(_admit_chat, request, byok=provider_key is not None)
        admission, chat, body = admitted
    except (ApplicationError, APIException) as refused:
        return error_response(refused)
    if state.gone:
        await _release(admission)
        return HttpResponse(status=499)
    if chat.stream:
        return await _chat_stream(admission, chat, body, provider_key, state, sink)
    forwarded = await _forward_json(admission, "chat/completions", body, provider_key)
    if isinstance(forwarded, HttpResponse):
        return forwarded
    content, payload = forwarded
    usage = reported_usage(payload)
    if usage is None:
        characters, pieces = completion_text_size(payload)
        usage = fallback_usage(
            reported=None,
            estimated_input_tokens=admission.estimated_input_tokens,
            text_output_tokens=estimate_output_tokens(characters=characters, pieces=pieces),
            output_bound=admission.output_bound,
            reasoning=admission.reasoning_model or reported_reasoning(payload),
        )
    charge = Charge.of_usage(admission.price, usage, {"stream": False, "usage_source": usage.source})
    settled = await settle(admission, charge)
    return _answer(content, admission, settled)


async def _chat_stream(
    admission: Admission,
    chat: ChatRequest,
    body: dict[str, Any],
    provider_key: str | None,
    state: CallState,
    sink: RelaySink | None,
) -> HttpResponseBase:
    try:
        response = await upstream.open_stream(
            "chat/completions", body, request_id=admission.request_id, provider_key=provider_key
        )
    except ApplicationError as error:
        await _release(admission)
        return error_response(error, headers=_id_headers(admission))
    relay = StreamRelay(admission=admission, response=response, strip_usage=not chat.wants_usage, sink=sink)
    state.relay = relay
    if state.gone:
        relay.stop()
    return StreamingHttpResponse(
        relay.events() if sink is None else (),  # with a sink the relay writes the body itself
        content_type="text/event-stream",
        headers={
            **_id_headers(admission),
            "X-Credits-Reserved": credits_text(admission.held),
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        },
    )


async def _images(request: HttpRequest, state: CallState) -> HttpResponseBase:
    try:
        provider_key = _provider_key(request)
        admission, image = await run_db(_admit_image, request, byok=provider_key is not None)
    except (ApplicationError, APIException) as refused:
        return error_response(refused)
    if state.gone:
        await _release(admission)
        return HttpResponse(status=499)
    forwarded = await _forward_json(admission, "images/generations", image.body, provider_key)
    if isinstance(forwarded, HttpResponse):
        return forwarded
    content, payload = forwarded
    data = payload.get("data") if isinstance(payload, dict) else None
    count = len(data) if isinstance(data, list) else image.count
    settled = await settle(
        admission,
        Charge(
            cost=admission.price.image_cost(count=count),
            metadata={"images": count, "size": image.size, "quality": image.quality},
        ),
    )
    return _answer(content, admission, settled)


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return method_not_allowed("POST")
    return await _serve(lambda state: _chat(request, state), "chat_completions")


async def chat_completion_on_loop(
    request: HttpRequest, state: CallState, sink: RelaySink
) -> HttpResponseBase:
    """``chat_completions`` for the lean route (a POST; ``NotOnLoop`` when it cannot be
    admitted on the loop). ``state`` is told by the lean route when the client leaves."""
    return await _serve(lambda state: _chat(request, state, sink), "chat_completions", state)


@csrf_exempt
async def image_generations(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return method_not_allowed("POST")
    return await _serve(lambda state: _images(request, state), "image_generations")


def _listing(request: HttpRequest) -> dict[str, Any]:
    authenticate(request, scope="read")
    return model_list()


async def models(request: HttpRequest) -> HttpResponseBase:
    if request.method != "GET":
        return method_not_allowed("GET")
    try:
        listing = await run_db(_listing, request)
    except (ApplicationError, APIException) as refused:
        return error_response(refused)
    return json_response(listing)
