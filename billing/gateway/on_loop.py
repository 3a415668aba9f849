"""The common chat admission and every settlement's first try, on the event loop: no thread
hand-off, one round trip each on the async pool (``billing.gateway.pg``).

Admission on the loop applies when everything the call needs is in the process's cache (API key,
payer, price) and no database read is needed before the hold (no BYOK check); the plan quota is
counted as on the threads: in the process (``LocMemCache``), or in Redis through its async client
in one round trip (``quotas.atake_quota``), so a hung Redis holds the call, never the loop, for
at most one socket timeout. A read the cache does not have raises Django's
``SynchronousOnlyOperation`` (the ORM refuses to run on the loop), and the call goes to the
threads (``None``), as does one the hold did not take (a refusal the ORM path explains, a
replayed request id) or whose cache generation moved. A refusal decided from the
cache is answered here only once the generation is read and still current.

Settlement on the loop: the ``ledger_settle`` call; when it does not apply (a replay, a late or
partial settlement, an allocation crossing its exhaustion threshold) the threads settle.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.http import HttpRequest
from rest_framework.exceptions import APIException

from billing.gateway.admission import chat_call
from billing.gateway.metering import ChatRequest
from billing.gateway.pg import call_function
from billing.ledger import holds
from billing.ledger.reservations import (
    hold_params,
    settled_result,
    settlement_params,
    validated_settlement,
)
from billing.ledger.sql import NotApplied
from billing.services import DeductionResult, ReservationResult
from billing.services.gateway_calls import cache as gateway_cache
from billing.services.gateway_calls.holds import Admission, HoldPlan, admitted, aplan_hold
from billing.services.gateway_calls.quotas import counted_on_loop
from orgbilling.errors import ApplicationError
from orgbilling.observability.charges import count_charge

CURRENT_GENERATION = "SELECT generation FROM gateway_cache_generation WHERE id = 1"


async def _still_current(cached: gateway_cache.CacheView) -> bool:
    if cached.verified or cached.generation is None:
        return True
    (generation,) = await call_function(CURRENT_GENERATION, {})
    if generation == cached.generation:
        return True
    gateway_cache.moved_to(generation)
    return False


async def _hold(plan: HoldPlan, generation: int | None) -> ReservationResult | None:
    params = hold_params(
        user_id=plan.user.pk,
        org_id=plan.org_id,
        amount=plan.amount,
        request_id=plan.request_id,
        ttl=settings.CREDIT_RESERVATION_TTL_SECONDS,
    )
    try:
        row = await call_function(holds.CALL_HOLD, holds.hold_params(params, generation))
        reservation_id, free = holds.held_from(row, generation)
    except holds.GenerationMoved as moved:
        gateway_cache.moved_to(moved.generation)
        return None
    except NotApplied:
        return None
    return ReservationResult(reservation_id=reservation_id, amount=plan.amount, remaining_credits=free)


async def admit_chat(request: HttpRequest) -> tuple[Admission, ChatRequest, dict[str, Any]] | None:
    """Admit a chat completion (no BYOK) on the loop; None: admit it on the threads."""
    cached = gateway_cache.known_view()
    if cached is None or not counted_on_loop():
        return None  # cache off, or this process's first call: the threads read the generation
    try:
        call, chat, body = chat_call(request, request.body, cached, byok=False)
        plan = await aplan_hold(cached=cached, **call)
    except SynchronousOnlyOperation:
        return None
    except (ApplicationError, APIException):
        if await _still_current(cached):
            raise
        return None
    try:
        held = await _hold(plan, cached.generation)
    except BaseException:
        if plan.ticket:
            await plan.ticket.agive_back()
        raise
    if held is None:
        if plan.ticket:
            await plan.ticket.agive_back()
        return None
    return admitted(plan, held), chat, body


async def settle(terms: dict[str, Any]) -> DeductionResult | None:
    """Settle a call (``settle_reservation``'s ``terms``) on the loop; None when the fast path
    does not apply (the threads settle it). ``DatabaseUnavailable`` as on the threads."""
    amount, caller_metadata, details = validated_settlement(
        actual_amount=terms["actual_amount"],
        service_type=terms["service_type"],
        service_name=terms["service_name"],
        input_tokens=terms["input_tokens"],
        output_tokens=terms["output_tokens"],
        metadata=terms["metadata"],
        token_details=terms["token_details"],
    )
    reservation_id = terms["reservation_id"]
    params = settlement_params(
        reservation_id=reservation_id,
        actual_amount=amount,
        caller_metadata=caller_metadata,
        service_type=terms["service_type"],
        service_name=terms["service_name"],
        input_tokens=terms["input_tokens"],
        output_tokens=terms["output_tokens"],
        **details,
    )
    try:
        row = await call_function(holds.CALL_SETTLE, holds.settle_params(reservation_id, params))
        _, done = holds.settled_from(reservation_id, row)
    except NotApplied:
        return None
    result = settled_result(done, amount)
    count_charge("settlement", result)
    return result
