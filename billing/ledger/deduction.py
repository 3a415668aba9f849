"""``deduct_credits``: the hot path, one charge per metered call, written as three statements.

The ORM version of this function spent most of its time building and compiling queries
(docs/benchmarks.md), so the charge is precompiled SQL run inside the same
``transaction.atomic()`` block, keeping the ledger's lock order (``billing.ledger.locks``):

1. ``CHARGE_POOL`` locks the organization's pool row (level 1) and counts the charge in it;
2. ``CHARGE_ALLOCATION`` locks and charges the member's active allocation (level 2), only if
   the member is active, the allocation unexpired and its free credits cover the amount;
3. ``INSERT_ORG_CHARGE`` appends the attribution row, or nothing if the ``request_id`` was
   charged before (``ON CONFLICT DO NOTHING`` sees every committed row: whoever charged that
   key held the pool lock and has committed by now).

If any statement changes nothing the transaction rolls back, and only then does the slow
path work out why: a replay (return the first result), or the typed refusal.
Individual credits follow the same pattern with the user's balance row as the only lock.

The statements live in ``billing.ledger.sql`` (prepared once per connection) and compose the
eligibility fragments of ``billing.ledger.eligibility``; the refusal is ``spend_refusal``.
"""

from typing import Any

from django.db import transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from billing.errors import InsufficientCredits
from billing.ledger.charges import (
    DeductionResult,
    audit_exhaustion,
    find_charge,
    replay_charge,
    token_detail_params,
    validate_charge_fields,
)
from billing.ledger.eligibility import spend_refusal, utc_day
from billing.ledger.sql import (
    CHARGE_ALLOCATION,
    CHARGE_INDIVIDUAL,
    CHARGE_POOL,
    INSERT_INDIVIDUAL_CHARGE,
    INSERT_ORG_CHARGE,
    NotApplied,
    fetch_one,
    ledger_cursor,
)
from billing.models import ServiceType
from billing.money import validate_millicredits
from organizations.models import User
from orgbilling.observability.charges import charges_counted, refusals_reported


def _try_charge(params: dict[str, Any], *, user: User) -> DeductionResult:
    org_id = params["org_id"]
    with transaction.atomic(), ledger_cursor() as cursor:
        if org_id is None:
            _, allocated, used, free = fetch_one(cursor, CHARGE_INDIVIDUAL, params)
            insert = INSERT_INDIVIDUAL_CHARGE
        else:
            fetch_one(cursor, CHARGE_POOL, params)
            params["allocation_id"], allocated, used, free = fetch_one(cursor, CHARGE_ALLOCATION, params)
            insert = INSERT_ORG_CHARGE
        params["balance_after"] = free
        (attribution_id,) = fetch_one(cursor, insert, params)
        if org_id is not None:
            audit_exhaustion(
                org_id=org_id,
                user=user,
                allocation_id=params["allocation_id"],
                allocated=allocated,
                used_before=used - params["amount"],
                used_after=used,
            )
    return DeductionResult(
        success=True, remaining_credits=free, credits_charged=params["amount"], attribution_id=attribution_id
    )


def has_sufficient_credits(*, user: User, org_id: str | None, amount: int) -> bool:
    """Whether a charge of ``amount`` millicredits would go through now: the same rules the
    deduction applies (no lock: a hint, not a hold)."""
    return spend_refusal(org_id=org_id, user=user, amount=validate_millicredits(amount)) is None


@refusals_reported("deduction")
@charges_counted("deduction")
def deduct_credits(
    *,
    user: User,
    org_id: str | None,
    amount: int,
    request_id: str,
    service_type: str = ServiceType.LLM,
    service_name: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    metadata: dict[str, Any] | None = None,
) -> DeductionResult:
    """Charge ``amount`` millicredits to the user's allocation in ``org_id`` (or their
    individual credits when ``org_id`` is None) and append the attribution row.

    Replaying a ``request_id`` returns the first result and charges nothing; reusing it for
    another user or amount raises ``RequestIdConflict``. Refusals raise a typed error and
    change nothing.
    """
    amount = validate_millicredits(amount)
    metadata = validate_charge_fields(
        request_id=request_id,
        service_type=service_type,
        service_name=service_name,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        metadata=metadata,
    )
    params: dict[str, Any] = {
        "org_id": org_id,
        "user_id": user.pk,
        "allocation_id": None,
        "amount": amount,
        "request_id": request_id,
        "service_type": service_type,
        "service_name": service_name,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        **token_detail_params(None),
        "metadata": Jsonb(metadata),
    }
    for _attempt in range(3):
        params["now"] = timezone.now()
        params["today"] = utc_day(params["now"])
        try:
            return _try_charge(dict(params), user=user)
        except NotApplied:
            previous = find_charge(org_id, user, request_id)
            if previous is not None:
                return replay_charge(previous, user=user, amount=amount)
            refusal = spend_refusal(org_id=org_id, user=user, amount=amount)
            if refusal is not None:
                raise refusal from None
            # The state moved between the attempt and the diagnosis (credits added, a hold
            # released): the charge may go through now.
    raise InsufficientCredits("The balance kept changing; try again.", details={"required": amount})
