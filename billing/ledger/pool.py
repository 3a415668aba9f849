"""Administrative ledger services: fund the pool and move credits between pool and members.

Each function is one transaction that locks in the order of ``billing.ledger.locks`` and
writes its audit event before it commits. An allocation that belongs to a department is carved
from the department's budget (the department's ``allocated_credits`` moves) instead of the
pool's free credits; the budget itself is already counted in the pool's ``allocated_credits``.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.audit import record_audit_event
from billing.errors import (
    AllocationBelowCommitted,
    AllocationExceedsDepartmentBudget,
    AllocationExceedsPool,
    AllocationExpired,
    AllocationHasHolds,
    AllocationInOtherDepartment,
    DepartmentAccessDenied,
    InsufficientCredits,
    InvalidTransfer,
    NoActiveAllocation,
    OrganizationInactive,
    OrganizationNotFound,
)
from billing.ledger.eligibility import org_refusal, require_active_member
from billing.ledger.grants import create_grant, refund_grant
from billing.ledger.keep import KEEP, Keep
from billing.ledger.locks import lock_allocations, lock_department, lock_pool
from billing.ledger.periods import (
    NO_PERIOD_CHANGE,
    PeriodChange,
    apply_due_boundaries_locked,
    change_period_settings,
)
from billing.models import (
    CreditGrant,
    CreditPurchase,
    Department,
    OrganizationCreditPool,
    OrgBillingHistory,
    UserCreditAllocation,
)
from billing.models.grants import DEFAULT_GRANT_PRIORITY, MAX_GRANT_PRIORITY
from billing.money import parse_usd, validate_millicredits
from organizations.models import Organization, User
from orgbilling.errors import Conflict, ValidationFailed


def _valid_daily_cap(daily_cap: int | Keep | None) -> int | Keep | None:
    if daily_cap is None or daily_cap is KEEP:
        return daily_cap
    assert not isinstance(daily_cap, Keep)
    return validate_millicredits(daily_cap, allow_zero=True)


def _set_daily_cap(allocation: UserCreditAllocation, daily_cap: int | Keep | None) -> dict[str, int | None]:
    """Apply ``daily_cap`` (unless KEEP); return the audit metadata of the change."""
    if daily_cap is KEEP or daily_cap == allocation.daily_cap_credits:
        return {}
    assert not isinstance(daily_cap, Keep)
    allocation.daily_cap_credits = daily_cap
    allocation.save(update_fields=["daily_cap_credits", "updated_at"])
    return {"daily_cap": daily_cap}


@dataclass(frozen=True)
class PoolChange:
    pool: OrganizationCreditPool
    history: OrgBillingHistory | None = None
    replayed: bool = False
    grant: CreditGrant | None = None


@dataclass(frozen=True)
class AllocationChange:
    allocation: UserCreditAllocation
    pool: OrganizationCreditPool
    created: bool = False
    returned_to_pool: int = 0


def _existing_org(org_id: str) -> Organization:
    org = Organization.objects.filter(pk=org_id).first()
    if org is None:
        raise OrganizationNotFound(details={"org_id": org_id})
    return org


def _active_org(org_id: str) -> Organization:
    org = Organization.objects.filter(pk=org_id).first()
    refusal = org_refusal(org_id, None if org is None else org.is_active)
    if refusal is not None:
        raise refusal
    assert org is not None
    return org


def _active_allocation_ref(org_id: str, user: User) -> tuple[int, int | None] | None:
    """With the pool locked: (id, department id) of the member's active allocation, or None.
    Allocations are created and deactivated only under the pool lock, so both stay true until
    commit (and the department is fixed at creation)."""
    return (
        UserCreditAllocation.objects.filter(org_id=org_id, user=user, is_active=True)
        .values_list("pk", "department_id")
        .first()
    )


def _require_department(actual: int | None, required: int | None) -> None:
    """A department manager's write (``required`` = their department) must stay inside it."""
    if required is not None and actual != required:
        raise DepartmentAccessDenied(details={"department_id": required})


def _lock_member_allocation(
    org_id: str, user: User, *, only_department_id: int | None = None
) -> tuple[UserCreditAllocation, Department | None]:
    """With the pool locked: lock the department of the member's active allocation (if any),
    then the allocation, or raise."""
    ref = _active_allocation_ref(org_id, user)
    if ref is None:
        raise NoActiveAllocation(details={"org_id": org_id, "user_id": user.username})
    allocation_id, department_id = ref
    _require_department(department_id, only_department_id)
    department = lock_department(org_id, department_id) if department_id is not None else None
    return lock_allocations([allocation_id])[allocation_id], department


def _check_room(pool: OrganizationCreditPool, department: Department | None, increase: int) -> None:
    """Refuse an increase the department's budget (or, outside departments, the pool) lacks."""
    if increase <= 0:
        return
    if department is not None:
        if increase > department.free_credits:
            raise AllocationExceedsDepartmentBudget(
                details={
                    "requested": increase,
                    "available": department.free_credits,
                    "department_id": department.pk,
                }
            )
    elif increase > pool.available_credits:
        raise AllocationExceedsPool(
            details={"requested": increase, "available": pool.available_credits, "org_id": pool.org_id}
        )


def _carve(pool: OrganizationCreditPool, department: Department | None, delta: int) -> None:
    """Count ``delta`` more (or, negative, fewer) allocated credits where they come from: the
    department's budget, or the pool."""
    if department is not None:
        department.allocated_credits += delta
        department.save(update_fields=["allocated_credits", "updated_at"])
    else:
        pool.allocated_credits += delta
        _save_pool(pool)


def _save_pool(pool: OrganizationCreditPool) -> None:
    pool.save(update_fields=["total_credits", "allocated_credits", "used_credits", "updated_at"])


def _save_allocation(allocation: UserCreditAllocation, *extra: str) -> None:
    allocation.save(
        update_fields=["allocated_credits", "used_credits", "reserved_credits", "updated_at", *extra]
    )


def add_credits_to_pool(
    *,
    org_id: str,
    amount: int,
    purchase_amount: Decimal | None = None,
    actor: User | None = None,
    actor_label: str = "",
    external_id: str | None = None,
    description: str = "",
    require_active_org: bool = True,
    source: str | None = None,
    expires_at: datetime | None = None,
    priority: int = DEFAULT_GRANT_PRIORITY,
    purchase: CreditPurchase | None = None,
) -> PoolChange:
    """Add ``amount`` millicredits to the pool (a grant, or a purchase when ``purchase_amount``
    is given) as one credit grant (``source``: ``purchase`` when paid, else ``manual``; with an
    optional ``expires_at`` and burn-down ``priority``); record a billing-history row keyed by
    ``external_id`` and an audit event. ``require_active_org=False`` is for money already taken
    (a paid card purchase): the credits are owed even when the organization was deactivated
    meanwhile."""
    amount = validate_millicredits(amount)
    paid = parse_usd(purchase_amount) if purchase_amount is not None else None
    source = source or (CreditGrant.Source.PURCHASE if paid is not None else CreditGrant.Source.MANUAL)
    _valid_grant_terms(source=source, expires_at=expires_at, priority=priority)
    if require_active_org:
        _active_org(org_id)
    elif not Organization.objects.filter(pk=org_id).exists():
        raise OrganizationNotFound(details={"org_id": org_id})
    with transaction.atomic():
        OrganizationCreditPool.objects.get_or_create(org_id=org_id)
        pool = lock_pool(org_id)
        if external_id is not None:
            # The external id (a payment, a webhook event) is the idempotency key of a top-up.
            previous = OrgBillingHistory.objects.filter(external_id=external_id).first()
            if previous is not None:
                if previous.org_id != org_id or previous.credits != amount:
                    raise Conflict(
                        "This external id was already used for another credit change.",
                        details={"external_id": external_id},
                    )
                return PoolChange(pool=pool, history=previous, replayed=True)
        pool.total_credits += amount
        _save_pool(pool)
        history, grant = _record_addition(
            pool=pool,
            amount=amount,
            paid=paid,
            external_id=external_id,
            description=description,
            audit={"actor": actor, "actor_label": actor_label},
            grant_terms={
                "source": source,
                "expires_at": expires_at,
                "priority": priority,
                "purchase": purchase,
            },
        )
    return PoolChange(pool=pool, history=history, grant=grant)


def _record_addition(
    *,
    pool: OrganizationCreditPool,
    amount: int,
    paid: Decimal | None,
    external_id: str | None,
    description: str,
    audit: dict[str, Any],
    grant_terms: dict[str, Any],
) -> tuple[OrgBillingHistory, CreditGrant]:
    """With the pool locked: the billing-history row (the ledger transaction) of credits added,
    the grant they enter as (linked to it), and the audit event."""
    history = OrgBillingHistory.objects.create(
        org_id=pool.org_id,
        event_type=(
            OrgBillingHistory.EventType.CREDIT_PURCHASE
            if paid is not None
            else OrgBillingHistory.EventType.CREDIT_GRANT
        ),
        external_id=external_id or f"credits-{uuid.uuid4()}",
        amount=paid,
        credits=amount,
        status="completed",
        description=description or "Credits added to the pool",
        occurred_at=timezone.now(),
    )
    grant = create_grant(
        pool=pool,
        credits=amount,
        history=history,
        description=description[:500],
        granted_by=audit["actor"],
        **grant_terms,
    )
    expires_at = grant_terms["expires_at"]
    record_audit_event(
        action="pool.credits_added",
        **audit,
        org_id=pool.org_id,
        target_type="credit_pool",
        target_id=pool.org_id,
        metadata={
            "credits": amount,
            "purchase_amount": str(paid) if paid is not None else None,
            "total_after": pool.total_credits,
            "history_id": history.pk,
            "grant_id": grant.pk,
            "source": grant_terms["source"],
            "expires_at": expires_at.isoformat() if expires_at else None,
            "priority": grant_terms["priority"],
        },
    )
    return history, grant


def _valid_grant_terms(*, source: str, expires_at: datetime | None, priority: int) -> None:
    if source not in CreditGrant.Source.values or source == CreditGrant.Source.LEGACY:
        raise ValidationFailed("Unknown grant source.", details={"source": source})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(
            "expires_at must be in the future.", details={"expires_at": expires_at.isoformat()}
        )
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= MAX_GRANT_PRIORITY:
        raise ValidationFailed(
            f"priority must be an integer from 0 to {MAX_GRANT_PRIORITY}.", details={"priority": priority}
        )


def take_back_unallocated_credits(
    *, org_id: str, amount: int, purchase: CreditPurchase | None = None
) -> OrganizationCreditPool | None:
    """Lower the pool's total by ``amount`` millicredits if that much is still unallocated (a
    refunded purchase: its grant counts that many fewer credits); return the pool, or None and
    change nothing when the credits are already handed out (or its grant no longer holds that
    many). The caller records the refund's history row (its ``credits`` count against the total
    in reconciliation) and audit event in the same transaction."""
    amount = validate_millicredits(amount)
    with transaction.atomic():
        pool = lock_pool(org_id)
        if pool.available_credits < amount:
            return None
        grant = CreditGrant.objects.filter(purchase=purchase).first() if purchase is not None else None
        if grant is not None:
            if grant.capacity < amount:
                return None
            refund_grant(pool=pool, grant=grant, amount=amount)
        pool.total_credits -= amount
        _save_pool(pool)
    return pool


def allocate_credits_to_user(
    *,
    org_id: str,
    user: User,
    amount: int,
    actor: User | None = None,
    actor_label: str = "",
    expires_at: datetime | None = None,
    department_id: int | None = None,
    daily_cap: int | Keep | None = KEEP,
    period: PeriodChange = NO_PERIOD_CHANGE,
) -> AllocationChange:
    """Give a member ``amount`` more millicredits from the pool's unallocated credits (or from
    the budget of ``department_id``), creating their allocation or raising the active one (and
    moving its expiry when given). The active allocation must belong to that same department.
    ``daily_cap``: millicredits the member may charge or hold per UTC day (None: no cap).
    ``period``: its recurrence (``billing.ledger.periods``); turned on here, the period amount
    defaults to ``amount``. A recurring allocation's due boundaries are applied first."""
    amount = validate_millicredits(amount)
    daily_cap = _valid_daily_cap(daily_cap)
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed(
            "expires_at must be in the future.", details={"expires_at": expires_at.isoformat()}
        )
    _active_org(org_id)
    with transaction.atomic():
        pool = lock_pool(org_id)
        department = lock_department(org_id, department_id) if department_id is not None else None
        # Checked under the pool lock: removing a member takes it first, so a member removed
        # concurrently cannot be handed a new allocation.
        require_active_member(org_id, user)
        _check_room(pool, department, amount)
        allocation, created = _raise_or_create_allocation(
            org_id=org_id,
            user=user,
            amount=amount,
            actor=actor,
            expires_at=expires_at,
            now=now,
            pool=pool,
            department=department,
        )
        _carve(pool, department, amount)
        cap_change = _set_daily_cap(allocation, daily_cap)
        period_change = change_period_settings(allocation, period, now=now, default_amount=amount)
        record_audit_event(
            action="allocation.created" if created else "allocation.increased",
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="allocation",
            target_id=allocation.pk,
            metadata={
                "user_id": user.username,
                "credits": amount,
                "allocated_after": allocation.allocated_credits,
                "pool_available_after": pool.available_credits,
                **_department_metadata(department),
                **cap_change,
                **period_change,
            },
        )
    return AllocationChange(allocation=allocation, pool=pool, created=created)


def _department_metadata(department: Department | None) -> dict[str, int]:
    if department is None:
        return {}
    return {"department_id": department.pk, "department_free_after": department.free_credits}


def _raise_or_create_allocation(
    *,
    org_id: str,
    user: User,
    amount: int,
    actor: User | None,
    expires_at: datetime | None,
    now: datetime,
    pool: OrganizationCreditPool,
    department: Department | None,
) -> tuple[UserCreditAllocation, bool]:
    """With the pool (and department) locked: create the member's allocation, or add ``amount``
    to the active one (moving its expiry when given; applying its due period boundaries first,
    so the credits land in the current period). Returns (allocation, created)."""
    existing = (
        UserCreditAllocation.objects.select_for_update(of=("self",))
        .filter(org_id=org_id, user=user, is_active=True)
        .first()
    )
    if existing is None:
        allocation = UserCreditAllocation.objects.create(
            org_id=org_id,
            user=user,
            allocated_credits=amount,
            allocated_by=actor,
            expires_at=expires_at,
            department=department,
        )
        return allocation, True
    department_id = department.pk if department is not None else None
    if existing.department_id != department_id:
        raise AllocationInOtherDepartment(
            details={"user_id": user.username, "allocation_department_id": existing.department_id}
        )
    if expires_at is None and existing.expires_at is not None and existing.expires_at <= now:
        # Credits added to an expired allocation could never be spent.
        raise AllocationExpired(
            "The allocation has expired; give a new expires_at to extend it.",
            details={"expires_at": existing.expires_at.isoformat()},
        )
    apply_due_boundaries_locked(pool, department, existing, now=now)
    existing.allocated_credits += amount
    existing.allocated_by = actor or existing.allocated_by
    if expires_at is not None:
        existing.expires_at = expires_at
    _save_allocation(existing, "allocated_by", "expires_at")
    return existing, False


def adjust_allocation(
    *,
    org_id: str,
    user: User,
    allocated: int,
    actor: User | None = None,
    actor_label: str = "",
    only_department_id: int | None = None,
    daily_cap: int | Keep | None = KEEP,
    period: PeriodChange = NO_PERIOD_CHANGE,
) -> AllocationChange:
    """Set a member's allocation to ``allocated`` millicredits (and its daily cap, unless KEEP).
    Raising it draws on the pool (or its department's budget); lowering it returns the
    difference there, but never below what is already used or held. ``only_department_id``:
    refuse (403) an allocation outside it. ``period``: its recurrence; turned on here, the
    period amount defaults to ``allocated − used``. Due boundaries are applied first."""
    allocated = validate_millicredits(allocated, allow_zero=True)
    daily_cap = _valid_daily_cap(daily_cap)
    org = _existing_org(org_id)
    with transaction.atomic():
        pool = lock_pool(org_id)
        allocation, department = _lock_member_allocation(org_id, user, only_department_id=only_department_id)
        if org.is_active:  # a deactivated organization's boundaries wait (they would draw credits)
            apply_due_boundaries_locked(pool, department, allocation, now=timezone.now())
        committed = allocation.used_credits + allocation.reserved_credits
        if allocated < committed:
            raise AllocationBelowCommitted(
                details={
                    "requested": allocated,
                    "used": allocation.used_credits,
                    "reserved": allocation.reserved_credits,
                }
            )
        delta = allocated - allocation.allocated_credits
        if delta > 0 and not org.is_active:
            # A deactivated organization may shrink allocations but not hand out more.
            raise OrganizationInactive(details={"org_id": org_id})
        _check_room(pool, department, delta)
        before = allocation.allocated_credits
        allocation.allocated_credits = allocated
        _save_allocation(allocation)
        _carve(pool, department, delta)
        cap_change = _set_daily_cap(allocation, daily_cap)
        period_change = change_period_settings(
            allocation, period, now=timezone.now(), default_amount=allocated - allocation.used_credits
        )
        record_audit_event(
            action="allocation.adjusted",
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="allocation",
            target_id=allocation.pk,
            metadata={
                "user_id": user.username,
                "allocated_before": before,
                "allocated_after": allocated,
                **_department_metadata(department),
                **cap_change,
                **period_change,
            },
        )
    return AllocationChange(allocation=allocation, pool=pool)


def revoke_allocation(
    *,
    org_id: str,
    user: User,
    actor: User | None = None,
    actor_label: str = "",
    only_department_id: int | None = None,
) -> AllocationChange:
    """Deactivate a member's allocation; its unused credits return to the pool (or to its
    department's budget). The revoked row keeps what it consumed (``allocated = used``) so pool
    sums stay exact. Allowed on a deactivated organization: stopping spend is always possible."""
    _existing_org(org_id)
    with transaction.atomic():
        pool = lock_pool(org_id)
        allocation, department = _lock_member_allocation(org_id, user, only_department_id=only_department_id)
        if allocation.reserved_credits:
            raise AllocationHasHolds(details={"reserved": allocation.reserved_credits})
        returned = allocation.allocated_credits - allocation.used_credits
        allocation.allocated_credits = allocation.used_credits
        allocation.is_active = False
        allocation.revoked_at = timezone.now()
        _save_allocation(allocation, "is_active", "revoked_at")
        _carve(pool, department, -returned)
        record_audit_event(
            action="allocation.revoked",
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="allocation",
            target_id=allocation.pk,
            metadata={
                "user_id": user.username,
                "returned_to_pool": returned,
                "used": allocation.used_credits,
                **_department_metadata(department),
            },
        )
    return AllocationChange(allocation=allocation, pool=pool, returned_to_pool=returned)


@dataclass(frozen=True)
class TransferResult:
    source: UserCreditAllocation
    target: UserCreditAllocation
    amount: int


def _credit_transfer_target(
    org_id: str,
    to_user: User,
    target: UserCreditAllocation | None,
    amount: int,
    actor: User | None,
    department_id: int | None,
) -> UserCreditAllocation:
    """Add ``amount`` to the receiving allocation (locked), or create it in ``department_id``."""
    if target is not None and target.expires_at is not None and target.expires_at <= timezone.now():
        raise AllocationExpired(
            "The receiving allocation has expired.", details={"user_id": to_user.username}
        )
    if target is None:
        # Creating under the pool lock: no one else can create this member's allocation now.
        return UserCreditAllocation.objects.create(
            org_id=org_id,
            user=to_user,
            allocated_credits=amount,
            allocated_by=actor,
            department_id=department_id,
        )
    target.allocated_credits += amount
    _save_allocation(target)
    return target


def transfer_credits(
    *,
    org_id: str,
    from_user: User,
    to_user: User,
    amount: int,
    actor: User | None = None,
    actor_label: str = "",
    only_department_id: int | None = None,
) -> TransferResult:
    """Move ``amount`` free millicredits from one member's allocation to another's (created if
    the target has none, in the source's department). Both must be in the same department (or
    both outside any): the pool's and the departments' totals do not change."""
    amount = validate_millicredits(amount)
    if from_user.pk == to_user.pk:
        raise InvalidTransfer(details={"user_id": from_user.username})
    _active_org(org_id)
    with transaction.atomic():
        pool = lock_pool(org_id)
        require_active_member(org_id, to_user)
        source_ref = _active_allocation_ref(org_id, from_user)
        if source_ref is None:
            raise NoActiveAllocation(details={"org_id": org_id, "user_id": from_user.username})
        source_id, department_id = source_ref
        _require_department(department_id, only_department_id)
        target_ref = _active_allocation_ref(org_id, to_user)
        target_id = target_ref[0] if target_ref else None
        if target_ref is not None and target_ref[1] != department_id:
            raise AllocationInOtherDepartment(
                details={"user_id": to_user.username, "allocation_department_id": target_ref[1]}
            )
        locked = lock_allocations([source_id] + ([target_id] if target_id else []))
        source = locked[source_id]
        if amount > source.free_credits:
            raise InsufficientCredits(
                "The source allocation does not have that many free credits.",
                details={"requested": amount, "available": source.free_credits},
            )
        source.allocated_credits -= amount
        _save_allocation(source)
        target = _credit_transfer_target(
            org_id, to_user, locked.get(target_id) if target_id else None, amount, actor, department_id
        )
        record_audit_event(
            action="credits.transferred",
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="allocation",
            target_id=target.pk,
            metadata={
                "from_user_id": from_user.username,
                "to_user_id": to_user.username,
                "credits": amount,
                "from_allocation": source.pk,
                "to_allocation": target.pk,
                "pool_allocated": pool.allocated_credits,
                "department_id": department_id,
            },
        )
    return TransferResult(source=source, target=target, amount=amount)
