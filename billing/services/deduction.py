"""``deduct_credits``: the hot path, one charge per metered call, written as three statements.

The ORM version of this function spent most of its time building and compiling queries
(docs/benchmarks.md), so the charge is precompiled SQL run inside the same
``transaction.atomic()`` block, keeping the ledger's lock order (``billing.services.locks``):

1. ``CHARGE_POOL`` locks the organization's pool row (level 1) and counts the charge in it;
2. ``CHARGE_ALLOCATION`` locks and charges the member's active allocation (level 2), only if
   the member is active, the allocation unexpired and its free credits cover the amount;
3. ``INSERT_ORG_CHARGE`` appends the attribution row, or nothing if the ``request_id`` was
   charged before (``ON CONFLICT DO NOTHING`` sees every committed row: whoever charged that
   key held the pool lock and has committed by now).

If any statement changes nothing the transaction rolls back, and only then does the slow
path work out why: a replay (return the first result), or the typed refusal.
Individual credits follow the same pattern with the user's balance row as the only lock.

Statements run through ``billing.services.sql`` (prepared once per connection).
"""

from typing import Any

from django.db import transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from billing.errors import (
    AllocationExpired,
    InsufficientCredits,
    NoActiveAllocation,
    NotAMember,
    OrganizationInactive,
    OrganizationNotFound,
)
from billing.models import (
    IndividualCreditBalance,
    OrganizationCreditPool,
    ServiceType,
    UserCreditAllocation,
)
from billing.money import validate_millicredits
from billing.services.charging import (
    DeductionResult,
    audit_exhaustion,
    find_charge,
    replay_charge,
    validate_charge_fields,
)
from billing.services.sql import (
    INSERT_INDIVIDUAL_CHARGE,
    INSERT_ORG_CHARGE,
    SPENDABLE_ALLOCATION,
    NotApplied,
    fetch_one,
    ledger_cursor,
)
from organizations.models import Organization, OrganizationMember, User
from orgbilling.observability.charges import charges_counted, refusals_reported

CHARGE_POOL = """
    UPDATE organization_credit_pools
       SET used_credits = used_credits + %(amount)s, updated_at = %(now)s
     WHERE org_id = %(org_id)s AND used_credits + %(amount)s <= allocated_credits
       AND EXISTS (SELECT 1 FROM organizations o WHERE o.id = %(org_id)s AND o.is_active)
    RETURNING org_id
"""

CHARGE_ALLOCATION = f"""
    UPDATE user_credit_allocations AS a
       SET used_credits = a.used_credits + %(amount)s, updated_at = %(now)s
     WHERE {SPENDABLE_ALLOCATION}
    RETURNING a.id, a.allocated_credits, a.used_credits,
              a.allocated_credits - a.used_credits - a.reserved_credits
"""

CHARGE_INDIVIDUAL = """
    UPDATE individual_credit_balances
       SET used_credits = used_credits + %(amount)s, updated_at = %(now)s
     WHERE user_id = %(user_id)s AND total_credits - used_credits - reserved_credits >= %(amount)s
    RETURNING NULL::bigint, total_credits, used_credits, total_credits - used_credits - reserved_credits
"""


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


def _refusal(*, org_id: str | None, user: User, amount: int) -> Exception | None:
    """Why a charge changed nothing, read after the rollback; None if it should now succeed."""
    if org_id is None:
        balance = IndividualCreditBalance.objects.filter(user=user).first()
        free = balance.free_credits if balance else 0
        if free >= amount:
            return None
        return InsufficientCredits(details={"required": amount, "available": free})
    org_active = Organization.objects.filter(pk=org_id).values_list("is_active", flat=True).first()
    if org_active is None or not OrganizationCreditPool.objects.filter(org_id=org_id).exists():
        return OrganizationNotFound(details={"org_id": org_id})
    if not org_active:
        return OrganizationInactive(details={"org_id": org_id})
    if not OrganizationMember.objects.filter(
        org_id=org_id, user=user, status=OrganizationMember.Status.ACTIVE
    ).exists():
        return NotAMember(details={"org_id": org_id, "user_id": user.username})
    allocation = UserCreditAllocation.objects.filter(org_id=org_id, user=user, is_active=True).first()
    if allocation is None:
        return NoActiveAllocation(details={"org_id": org_id, "user_id": user.username})
    if allocation.expires_at is not None and allocation.expires_at <= timezone.now():
        return AllocationExpired(details={"org_id": org_id, "expires_at": allocation.expires_at.isoformat()})
    if allocation.free_credits < amount:
        return InsufficientCredits(details={"required": amount, "available": allocation.free_credits})
    return None


def has_sufficient_credits(*, user: User, org_id: str | None, amount: int) -> bool:
    """Whether a charge of ``amount`` millicredits would go through now: the same rules the
    deduction applies (no lock: a hint, not a hold)."""
    return _refusal(org_id=org_id, user=user, amount=validate_millicredits(amount)) is None


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
        "metadata": Jsonb(metadata),
    }
    for _attempt in range(3):
        params["now"] = timezone.now()
        try:
            return _try_charge(dict(params), user=user)
        except NotApplied:
            previous = find_charge(org_id, user, request_id)
            if previous is not None:
                return replay_charge(previous, user=user, amount=amount)
            refusal = _refusal(org_id=org_id, user=user, amount=amount)
            if refusal is not None:
                raise refusal from None
            # The state moved between the attempt and the diagnosis (credits added, a hold
            # released): the charge may go through now.
    raise InsufficientCredits("The balance kept changing; try again.", details={"required": amount})
