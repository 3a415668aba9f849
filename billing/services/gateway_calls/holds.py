"""A gateway call's credits: who pays, the plan quota and the hold taken before the call goes
upstream (``hold_call``); afterwards the real cost settled (``settle_call``, from the plain
JSON terms of ``settlement_terms``) or the hold released (``release_call``).

The gateway (``billing.gateway.admission``) authenticates the caller, parses and prices the
request and calls ``hold_call`` on its database threads.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from billing.errors import (
    ByokDisabled,
    NoActiveAllocation,
    NoAllocation,
    QuotaExceeded,
    RequestIdConflict,
    ReservationNotHeld,
)
from billing.models import ServiceType
from billing.money import MAX_MILLICREDITS
from billing.pricing import PriceSnapshot
from billing.services import (
    DeductionResult,
    ReservationResult,
    release_reservation,
    reserve_credits,
    resolve_billing_context,
    settle_reservation,
)
from billing.services.gateway_calls.cache import CacheView, payer
from billing.services.gateway_calls.config import setting
from billing.services.gateway_calls.quotas import QuotaTicket, atake_quota, take_quota
from organizations.models import ApiKey, Organization, User
from orgbilling.observability.charges import charge_refused


@dataclass(frozen=True)
class Admission:
    """A call that may go upstream: its payer, price and hold."""

    request_id: str
    user: User
    org_id: str | None
    api_key_id: int | None
    model: str
    price: PriceSnapshot
    reservation_id: int
    held: int
    remaining_after_hold: int
    byok: bool
    service_type: str
    estimated_input_tokens: int
    quota: QuotaTicket | None
    output_bound: int = 0  # the output tokens the hold was sized for (all choices)
    reasoning_model: bool = False  # LLM_REASONING_MODELS names it, or the call asked it to reason
    admitted_at: float = field(default_factory=time.time)  # when the hold was taken (epoch seconds)


def _require_byok_allowed(org_id: str | None) -> None:
    """A call with the caller's own provider key is charged 0: only where the deployment allows
    it (``LLM_BYOK_ENABLED``) and, for an organization's call, its admins opted in."""
    if not setting("LLM_BYOK_ENABLED"):
        raise ByokDisabled("This gateway does not accept callers' own provider keys (X-Provider-Key).")
    if org_id is not None and not Organization.objects.filter(pk=org_id, byok_enabled=True).exists():
        raise ByokDisabled(
            "This organization has not enabled callers' own provider keys; an org admin can "
            "(PUT /api/v1/org-billing/credits/{org_id}/byok).",
            details={"org_id": org_id},
        )


def _reserve(
    *,
    user: User,
    org_id: str | None,
    amount: int,
    request_id: str,
    ticket: QuotaTicket | None,
    cache_generation: int | None,
) -> ReservationResult:
    """The hold, or the refusal the gateway answers with; a refused call gives its quota back
    (so does one whose cache generation moved: ``GenerationMoved``, retried with fresh reads)."""
    try:
        held = reserve_credits(
            user=user, org_id=org_id, amount=amount, request_id=request_id, cache_generation=cache_generation
        )
    except NoActiveAllocation as refusal:
        if ticket:
            ticket.give_back()
        raise NoAllocation(refusal.message, details=refusal.details) from None
    except ReservationNotHeld:
        if ticket:
            ticket.give_back()
        raise RequestIdConflict(
            "An earlier call used this X-Request-Id; use a new id for a new call.",
            details={"request_id": request_id},
        ) from None
    except BaseException:
        if ticket:
            ticket.give_back()
        raise
    if held.replayed:
        # The caller chose the id (X-Request-Id) and a call with it is still in flight: sharing
        # its hold would let two upstream calls settle as one charge. One call per id.
        if ticket:
            ticket.give_back()
        raise RequestIdConflict(
            "A call with this X-Request-Id is still in progress; use a new id for a new call.",
            details={"request_id": request_id},
        )
    return held


@dataclass(frozen=True)
class HoldPlan:
    """A call decided on but not yet held: its payer, the amount to hold, its quota ticket."""

    user: User
    api_key: ApiKey | None
    org_id: str | None
    request_id: str
    model: str
    price: PriceSnapshot
    amount: int
    byok: bool
    service_type: str
    estimated_input_tokens: int
    output_bound: int
    reasoning_model: bool
    ticket: QuotaTicket | None


def plan_hold(*, cached: CacheView | None = None, **call: Any) -> HoldPlan:
    """Decide who pays (``requested_org_id``, else the user's default org, else individual
    credits), check BYOK is allowed and count the plan quota (the ticket is given back if the
    hold is not taken). ``cached``: the call's view of the gateway cache (``cache``); ``call``:
    ``_payer_plan``'s arguments."""
    plan = _payer_plan(cached=cached, **call)
    with _quota_refusals(plan):
        ticket = take_quota(org_id=plan.org_id, tokens=plan.estimated_input_tokens + plan.output_bound)
    return replace(plan, ticket=ticket)


async def aplan_hold(*, cached: CacheView, **call: Any) -> HoldPlan:
    """``plan_hold`` on the event loop (``quotas.counted_on_loop()``): the plan quota counted
    without blocking it. Raises ``SynchronousOnlyOperation`` when a database read is needed."""
    plan = _payer_plan(cached=cached, **call)
    with _quota_refusals(plan):
        ticket = await atake_quota(org_id=plan.org_id, tokens=plan.estimated_input_tokens + plan.output_bound)
    return replace(plan, ticket=ticket)


@contextmanager
def _quota_refusals(plan: HoldPlan) -> Iterator[None]:
    try:
        yield
    except QuotaExceeded as refusal:
        charge_refused(refusal, operation="quota", org_id=plan.org_id, user=plan.user, amount=plan.amount)
        raise


def _payer_plan(
    *,
    user: User,
    api_key: ApiKey | None,
    requested_org_id: str | None,
    request_id: str,
    model: str,
    price: PriceSnapshot,
    worst_case: int,
    byok: bool,
    service_type: str,
    estimated_input_tokens: int = 0,
    output_bound: int = 0,
    reasoning_model: bool = False,
    cached: CacheView | None = None,
) -> HoldPlan:
    """The call's payer and the amount to hold, before the quota is counted."""
    context = (
        payer(cached, user=user, requested_org_id=requested_org_id)
        if cached is not None
        else resolve_billing_context(user=user, requested_org_id=requested_org_id)
    )
    if byok:
        _require_byok_allowed(context.org_id)
    return HoldPlan(
        user=user,
        api_key=api_key,
        org_id=context.org_id,
        request_id=request_id,
        model=model,
        price=price,
        amount=0 if byok else worst_case,
        byok=byok,
        service_type=service_type,
        estimated_input_tokens=estimated_input_tokens,
        output_bound=output_bound,
        reasoning_model=reasoning_model,
        ticket=None,
    )


def admitted(plan: HoldPlan, held: ReservationResult) -> Admission:
    """The call of ``plan``, held."""
    return Admission(
        request_id=plan.request_id,
        user=plan.user,
        org_id=plan.org_id,
        api_key_id=plan.api_key.pk if plan.api_key is not None else None,
        model=plan.model,
        price=plan.price,
        reservation_id=held.reservation_id,
        held=held.amount,
        remaining_after_hold=held.remaining_credits,
        byok=plan.byok,
        service_type=ServiceType.BYOK if plan.byok else plan.service_type,
        estimated_input_tokens=plan.estimated_input_tokens,
        quota=plan.ticket,
        output_bound=plan.output_bound,
        reasoning_model=plan.reasoning_model,
    )


def hold_call(*, cached: CacheView | None = None, **call: Any) -> Admission:
    """``plan_hold`` (``call``: its arguments), then hold the amount (0 for BYOK, which still
    checks the payer may spend). ``request_id`` is the call's one id: response, logs, audit,
    ledger rows."""
    plan = plan_hold(cached=cached, **call)
    held = _reserve(
        user=plan.user,
        org_id=plan.org_id,
        amount=plan.amount,
        request_id=plan.request_id,
        ticket=plan.ticket,
        cache_generation=cached.generation if cached is not None else None,
    )
    return admitted(plan, held)


def chargeable_cost(admission: Admission, cost: int) -> int:
    """What settling ``cost`` asks of the payer: nothing for BYOK, never above the money cap."""
    return 0 if admission.byok else min(cost, MAX_MILLICREDITS)


def call_terms(admission: Admission) -> dict[str, Any]:
    """Who pays for the call and at what price, as plain JSON values: what ``terms_for_call``
    needs, kept with the call's open record (``billing.services.gateway_calls.open_calls``)."""
    return {
        "reservation_id": admission.reservation_id,
        "request_id": admission.request_id,
        "service_type": admission.service_type,
        "model": admission.model,
        "price": admission.price.as_metadata(),
        "api_key_id": admission.api_key_id,
        "byok": admission.byok,
    }


def terms_for_call(
    call: dict[str, Any],
    *,
    cost: int,
    input_tokens: int = 0,
    output_tokens: int = 0,
    metadata: dict[str, Any] | None = None,
    token_details: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``settle_reservation`` that charge ``cost`` for the call of
    ``call_terms`` (0 for BYOK, never above the money cap); ``token_details`` is the totals'
    breakdown (``billing.call_usage.Usage.details``)."""
    byok = bool(call["byok"])
    return {
        "reservation_id": call["reservation_id"],
        "actual_amount": 0 if byok else min(cost, MAX_MILLICREDITS),
        "service_type": call["service_type"],
        "service_name": call["model"],
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "token_details": dict(token_details or {}),
        "metadata": {
            "price": call["price"],
            "request_id": call["request_id"],
            "api_key_id": call["api_key_id"],
            "byok": byok,
            **({"list_price_credits": cost} if byok else {}),
            **(metadata or {}),
        },
    }


def settlement_terms(
    admission: Admission,
    *,
    cost: int,
    input_tokens: int = 0,
    output_tokens: int = 0,
    metadata: dict[str, Any] | None = None,
    token_details: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``settle_reservation`` that charge the call's real cost (0 for
    BYOK): plain JSON values, so a settlement can be spooled (``gateway_calls.spool``)."""
    return terms_for_call(
        call_terms(admission),
        cost=cost,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        metadata=metadata,
        token_details=token_details,
    )


def settle_call(
    admission: Admission,
    *,
    cost: int,
    input_tokens: int = 0,
    output_tokens: int = 0,
    metadata: dict[str, Any] | None = None,
) -> DeductionResult:
    """Charge the call's real cost (0 for BYOK) and free the rest of the hold. The row keeps
    the model, tokens, price, request id, payer and the API key used."""
    return settle_reservation(
        **settlement_terms(
            admission, cost=cost, input_tokens=input_tokens, output_tokens=output_tokens, metadata=metadata
        )
    )


def release_call(admission: Admission) -> None:
    """The call was not made or failed upstream: charge nothing, give the quota back."""
    release_reservation(reservation_id=admission.reservation_id)
    if admission.quota is not None:
        admission.quota.give_back()
