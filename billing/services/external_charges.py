"""Charges reported by an external gateway (a LiteLLM proxy, another OpenAI-compatible
gateway): after the call, it tells orgbilling who made it and what it cost.

The payer is resolved as for the gateway (``org_id``, else the user's default org, else
individual credits). The caller must administer the paying organization (a system admin may
charge anyone, individual credits included); an org-scoped key reaches its own org only.
Idempotent on ``request_id``: a retry returns the first charge and charges nothing.
"""

from dataclasses import dataclass
from typing import Any

from billing.errors import NoActiveAllocation, NoAllocation
from billing.ledger.charges import find_charge, replay_charge
from billing.models import ServiceType
from billing.money import MAX_MILLICREDITS
from billing.pricing import price_for
from billing.services import (
    DeductionResult,
    deduct_credits,
    release_reservation,
    reserve_credits,
    resolve_billing_context,
    settle_reservation,
)
from organizations.models import User
from organizations.permissions import acts_as_system_admin, org_admin_access
from organizations.selectors import user_by_id
from orgbilling.errors import Forbidden, ValidationFailed


@dataclass(frozen=True)
class ExternalCharge:
    result: DeductionResult
    user: User
    org_id: str | None
    request_id: str


def _amount(
    *, model: str, input_tokens: int, output_tokens: int, credits: int | None
) -> tuple[int, dict[str, Any]]:
    """Millicredits to charge and the price metadata: the given credits, else tokens × the
    model's price now."""
    if credits is not None:
        return credits, {"priced_by": "caller"}
    if not model:
        raise ValidationFailed(
            "Give credits, or a model and its tokens.", details={"fields": {"model": model}}
        )
    if not input_tokens and not output_tokens:
        raise ValidationFailed("Give credits, or the call's tokens.", details={"fields": {"input_tokens": 0}})
    price = price_for(model)
    cost = min(MAX_MILLICREDITS, price.token_cost(input_tokens=input_tokens, output_tokens=output_tokens))
    return cost, {"priced_by": "orgbilling", "price": price.as_metadata()}


def charge_external_usage(
    *,
    actor: User,
    user_id: str,
    org_id: str | None,
    request_id: str,
    model: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    credits: int | None = None,
    service_type: str = ServiceType.LLM,
    metadata: dict[str, Any] | None = None,
) -> ExternalCharge:
    """Charge ``user_id`` for a call made elsewhere (see the module docstring)."""
    if org_id is not None:
        org_admin_access(user=actor, org_id=org_id)  # 404 for an org the caller cannot see
    user = user_by_id(user_id)
    context = resolve_billing_context(user=user, requested_org_id=org_id)
    if context.org_id is None:
        if not acts_as_system_admin(actor):
            raise Forbidden("Only system admins may charge individual credits.", details={"user_id": user_id})
    elif org_id is None:
        org_admin_access(user=actor, org_id=context.org_id)
    amount, price_metadata = _amount(
        model=model, input_tokens=input_tokens, output_tokens=output_tokens, credits=credits
    )
    charge_metadata = {**(metadata or {}), **price_metadata, "reported_by": actor.username}
    previous = find_charge(context.org_id, user, request_id)
    if previous is not None:
        replay = replay_charge(previous, user=user, amount=amount if credits is not None else None)
        return ExternalCharge(replay, user, context.org_id, request_id)
    fields: dict[str, Any] = {
        "service_type": service_type,
        "service_name": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "metadata": charge_metadata,
    }
    try:
        if amount:
            result = deduct_credits(
                user=user, org_id=context.org_id, amount=amount, request_id=request_id, **fields
            )
        else:
            result = _record_free_call(user=user, org_id=context.org_id, request_id=request_id, **fields)
    except NoActiveAllocation as refusal:
        raise NoAllocation(refusal.message, details=refusal.details) from None
    return ExternalCharge(result, user, context.org_id, request_id)


def _record_free_call(*, user: User, org_id: str | None, request_id: str, **fields: Any) -> DeductionResult:
    """A 0-credit attribution row, through a hold of 0 settled at 0 (the deduction charges
    positive amounts only). Two transactions, not one: settling takes the pool lock, which must
    not be requested while the hold's allocation lock is held (billing.ledger.locks)."""
    held = reserve_credits(user=user, org_id=org_id, amount=0, request_id=request_id)
    try:
        return settle_reservation(reservation_id=held.reservation_id, actual_amount=0, **fields)
    except BaseException:
        release_reservation(reservation_id=held.reservation_id)
        raise
