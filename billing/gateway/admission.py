"""The gateway's ledger work, all synchronous (run through ``billing.gateway.db.run_db``):
authenticate the caller, decide who pays, price the worst case, count the plan quota and hold
the credits before anything goes upstream; afterwards settle at the real cost or release.
"""

import time
from dataclasses import dataclass, field
from typing import Any, cast

from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, PermissionDenied
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.settings import api_settings

from billing.errors import (
    ByokDisabled,
    NoActiveAllocation,
    NoAllocation,
    OrganizationNotFound,
    QuotaExceeded,
    RequestIdConflict,
    ReservationNotHeld,
)
from billing.gateway.config import setting
from billing.gateway.metering import (
    ChatRequest,
    ImageRequest,
    chat_request,
    image_request,
    is_reasoning_model,
    parse_json_object,
)
from billing.gateway.quotas import QuotaTicket, take_quota
from billing.ledger.charges import MAX_TOKENS
from billing.models import ServiceType
from billing.money import MAX_MILLICREDITS
from billing.pricing import PriceSnapshot, price_for
from billing.services import (
    DeductionResult,
    release_reservation,
    reserve_credits,
    resolve_billing_context,
    settle_reservation,
)
from organizations.auth.api_key_auth import ApiKeyScopePermission, request_api_key
from organizations.models import ApiKey, Organization, User
from orgbilling.observability.charges import charge_refused
from orgbilling.observability.request_id import request_id_of

ORG_HEADER = "X-Org-Id"
PROVIDER_KEY_HEADER = "X-Provider-Key"


@dataclass(frozen=True)
class Caller:
    user: User
    api_key: ApiKey | None


def authenticate(request: HttpRequest, *, scope: str) -> Caller:
    """The REST API's authenticators (API key, Keycloak bearer, session with CSRF), and the
    API key's scope: ``write`` to spend credits, ``read`` to list models."""
    classes = cast(list[type[BaseAuthentication]], api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    # Parsers too: the session's CSRF check reads request.POST.
    parsers = cast(list[type[BaseParser]], api_settings.DEFAULT_PARSER_CLASSES)
    authenticators = [auth() for auth in classes]
    drf_request = Request(request, authenticators=authenticators, parsers=[parser() for parser in parsers])
    try:
        user = drf_request.user  # raises AuthenticationFailed / PermissionDenied (CSRF)
        if user is None or not user.is_authenticated:
            raise NotAuthenticated()
    except (NotAuthenticated, AuthenticationFailed) as refusal:
        # As DRF's views do: a 401 names the scheme to use (WWW-Authenticate).
        refusal.auth_header = authenticators[0].authenticate_header(drf_request)  # type: ignore[union-attr]
        raise
    key = request_api_key(drf_request)
    if key is not None and scope not in key.scopes:
        raise PermissionDenied(ApiKeyScopePermission.message)
    assert isinstance(user, User)
    return Caller(user=user, api_key=key)


def requested_org(request: HttpRequest, caller: Caller) -> str | None:
    """``X-Org-Id``, else the org an org-scoped API key is bound to. A key bound to one org
    naming another answers 404, as everywhere else in the API."""
    header = (request.headers.get(ORG_HEADER) or "").strip() or None
    key_org = caller.api_key.org_id if caller.api_key is not None else None
    if key_org is not None and header is not None and header != key_org:
        raise OrganizationNotFound(details={"org_id": header})
    return header or key_org


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


def _output_cap(price: PriceSnapshot) -> int:
    cap: int = price.max_output_tokens or setting("LLM_DEFAULT_MAX_OUTPUT_TOKENS")
    return cap


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


def _hold(
    request: HttpRequest,
    caller: Caller,
    *,
    model: str,
    price: PriceSnapshot,
    worst_case: int,
    byok: bool,
    service_type: str,
    estimated_input_tokens: int = 0,
    output_bound: int = 0,
    reasoning_model: bool = False,
) -> Admission:
    context = resolve_billing_context(user=caller.user, requested_org_id=requested_org(request, caller))
    if byok:
        _require_byok_allowed(context.org_id)
    amount = 0 if byok else worst_case  # 0 still checks the payer may spend
    try:
        ticket = take_quota(org_id=context.org_id)
    except QuotaExceeded as refusal:
        charge_refused(refusal, operation="quota", org_id=context.org_id, user=caller.user, amount=amount)
        raise
    request_id = request_id_of(request)  # the call's one id: response, logs, audit, ledger rows
    try:
        held = reserve_credits(user=caller.user, org_id=context.org_id, amount=amount, request_id=request_id)
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
    return Admission(
        request_id=request_id,
        user=caller.user,
        org_id=context.org_id,
        api_key_id=caller.api_key.pk if caller.api_key is not None else None,
        model=model,
        price=price,
        reservation_id=held.reservation_id,
        held=held.amount,
        remaining_after_hold=held.remaining_credits,
        byok=byok,
        service_type=ServiceType.BYOK if byok else service_type,
        estimated_input_tokens=estimated_input_tokens,
        quota=ticket,
        output_bound=output_bound,
        reasoning_model=reasoning_model,
    )


def admit_chat(request: HttpRequest, *, byok: bool) -> tuple[Admission, ChatRequest, dict[str, Any]]:
    """Authenticate, price the worst case of a chat completion and hold it. Returns the
    admission, the parsed request and the body to send upstream."""
    raw_body = request.body  # before the authenticators: a session's CSRF check reads the stream
    caller = authenticate(request, scope=ApiKey.Scope.WRITE)
    chat = chat_request(parse_json_object(raw_body))
    price = price_for(chat.model)
    output_cap = _output_cap(price) if chat.max_output_tokens is None else None
    output = chat.max_output_tokens if chat.max_output_tokens is not None else _output_cap(price)
    output_bound = min(MAX_TOKENS, output * chat.choices)
    worst_case = min(
        MAX_MILLICREDITS,
        price.token_cost(input_tokens=chat.estimated_input_tokens, output_tokens=output * chat.choices),
    )
    admission = _hold(
        request,
        caller,
        model=chat.model,
        price=price,
        worst_case=worst_case,
        byok=byok,
        service_type=ServiceType.LLM,
        estimated_input_tokens=chat.estimated_input_tokens,
        output_bound=output_bound,
        reasoning_model=chat.reasoning or is_reasoning_model(chat.model, setting("LLM_REASONING_MODELS")),
    )
    return admission, chat, chat.upstream_body(output_cap=output_cap)


def admit_image(request: HttpRequest, *, byok: bool) -> tuple[Admission, ImageRequest]:
    raw_body = request.body  # before the authenticators: a session's CSRF check reads the stream
    caller = authenticate(request, scope=ApiKey.Scope.WRITE)
    image = image_request(parse_json_object(raw_body))
    price = price_for(image.model, size=image.size, quality=image.quality)
    worst_case = min(MAX_MILLICREDITS, price.image_cost(count=image.count))
    admission = _hold(
        request, caller, model=image.model, price=price, worst_case=worst_case, byok=byok,
        service_type=ServiceType.IMAGE,
    )  # fmt: skip
    return admission, image


def chargeable_cost(admission: Admission, cost: int) -> int:
    """What settling ``cost`` asks of the payer: nothing for BYOK, never above the money cap."""
    return 0 if admission.byok else min(cost, MAX_MILLICREDITS)


def call_terms(admission: Admission) -> dict[str, Any]:
    """Who pays for the call and at what price, as plain JSON values: what ``terms_for_call``
    needs, kept with the call's open record (``billing.gateway.open_calls``)."""
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
) -> dict[str, Any]:
    """The keyword arguments of ``settle_reservation`` that charge ``cost`` for the call of
    ``call_terms`` (0 for BYOK, never above the money cap)."""
    byok = bool(call["byok"])
    return {
        "reservation_id": call["reservation_id"],
        "actual_amount": 0 if byok else min(cost, MAX_MILLICREDITS),
        "service_type": call["service_type"],
        "service_name": call["model"],
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
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
) -> dict[str, Any]:
    """The keyword arguments of ``settle_reservation`` that charge the call's real cost (0 for
    BYOK): plain JSON values, so a settlement can be spooled (``billing.gateway.spool``)."""
    return terms_for_call(
        call_terms(admission),
        cost=cost,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        metadata=metadata,
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
