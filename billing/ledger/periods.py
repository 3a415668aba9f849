"""Recurring allocations: the period clock, an allocation's period settings, and applying its
due boundaries exactly once each.

Semantics (README, "Recurring allocations"; docs/decisions.md):

- Periods are UTC: a day starts at 00:00, a week on Monday 00:00 (ISO), a month on the 1st.
  An allocation made recurring mid-period keeps what it was given for the rest of that period;
  its first boundary is the next calendar boundary (a monthly allocation made on the 15th
  resets on the 1st).
- At a boundary, ``unspent`` = the allocation's free credits (allocated − used − reserved).
  **reset**: the new period's budget is the amount; the unspent credits go back to where the
  allocation was carved from (the pool, or its department's budget). **refill**: the budget is
  the amount plus the unspent credits carried over, at most ``rollover_cap_credits`` of them
  (none without a cap); the rest goes back. Both net to one movement: the allocation is set to
  ``used + max(budget, reserved)``; the difference is drawn from the pool's available credits
  (or the department's free budget) or returned there.
- ``used_credits`` stays the allocation's lifetime consumption, so the pool's ``used`` and every
  reconciliation sum stay exact and untouched; the period's own consumption is
  ``used − period_start_used_credits``.
- Holds in flight (``reserved_credits``) are never freed: they count in the new period's budget
  (a call running across the boundary is charged to the new period, once), and the allocation
  never drops below ``used + reserved``.
- A source that lacks what the boundary wants gives what it has; the rest is the ``shortfall``
  of the period row and its audit event. Nothing ever goes negative.
- Each boundary is one ``AllocationPeriod`` row, unique on (allocation, period_start): applied
  once, however many workers or retries. Missed boundaries (downtime) are applied one by one,
  in order, each with its row; a boundary is never applied before its instant.

Locks: pool → department → allocation (``billing.ledger.locks``), the order every charge and
admin write uses, so a charge settling concurrently lands wholly before (old period) or after
(new period) the boundary.
"""

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from django.db import transaction

from billing.audit import record_audit_event
from billing.errors import DepartmentNotFound
from billing.ledger.keep import KEEP, Keep
from billing.ledger.locks import lock_allocations, lock_department, lock_pool
from billing.models import (
    AllocationPeriod,
    Department,
    OrganizationCreditPool,
    Period,
    PeriodMode,
    UserCreditAllocation,
)
from billing.money import validate_millicredits
from organizations.models import Organization
from orgbilling.errors import ValidationFailed

PERIOD_ACTOR = "task:apply_allocation_periods"


# --- the clock -----------------------------------------------------------------------------


def period_start(moment: datetime, period: str) -> datetime:
    """The start (UTC) of the ``period`` containing ``moment``."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == Period.DAILY:
        return day
    if period == Period.WEEKLY:
        return day - timedelta(days=day.weekday())
    if period == Period.MONTHLY:
        return day.replace(day=1)
    raise ValueError(f"unknown period {period!r}")


def next_boundary(start: datetime, period: str) -> datetime:
    """The boundary after the period that starts at ``start``."""
    if period == Period.DAILY:
        return start + timedelta(days=1)
    if period == Period.WEEKLY:
        return start + timedelta(days=7)
    if period == Period.MONTHLY:
        days = calendar.monthrange(start.year, start.month)[1]
        return start + timedelta(days=days)
    raise ValueError(f"unknown period {period!r}")


def due_boundaries(allocation: UserCreditAllocation, now: datetime) -> list[datetime]:
    """The boundaries of a recurring allocation that have passed (``<= now``) and are not applied."""
    if not allocation.period or allocation.next_period_start is None:
        return []
    due: list[datetime] = []
    boundary = allocation.next_period_start
    while boundary <= now:
        due.append(boundary)
        boundary = next_boundary(boundary, allocation.period)
    return due


# --- an allocation's period settings -------------------------------------------------------


@dataclass(frozen=True)
class PeriodChange:
    """Requested period settings; ``KEEP`` leaves one as it is. ``period=None`` stops recurrence."""

    period: str | Keep | None = KEEP
    mode: str | Keep = KEEP
    amount: int | Keep = KEEP
    rollover_cap: int | Keep | None = KEEP

    @property
    def empty(self) -> bool:
        return all(value is KEEP for value in (self.period, self.mode, self.amount, self.rollover_cap))


NO_PERIOD_CHANGE = PeriodChange()

_PERIOD_FIELDS = [
    "period",
    "period_mode",
    "period_amount_credits",
    "rollover_cap_credits",
    "current_period_start",
    "next_period_start",
    "period_start_used_credits",
    "updated_at",
]


def _stop_recurrence(allocation: UserCreditAllocation, change: PeriodChange) -> dict[str, object]:
    fields = {
        "mode": "period_mode",
        "amount": "period_amount_credits",
        "rollover_cap": "rollover_cap_credits",
    }
    given = [field for name, field in fields.items() if getattr(change, name) not in (KEEP, None)]
    if given:
        raise ValidationFailed(
            "Period settings need a period.", details=dict.fromkeys(given, "needs a period")
        )
    if not allocation.period:
        return {}
    allocation.period = allocation.period_mode = ""
    allocation.period_amount_credits = allocation.rollover_cap_credits = None
    allocation.current_period_start = allocation.next_period_start = None
    allocation.save(update_fields=_PERIOD_FIELDS)
    return {"period": None}


def _merged(
    allocation: UserCreditAllocation, change: PeriodChange, default_amount: int
) -> tuple[str, int, int | None]:
    """(mode, amount, rollover cap) of ``change`` over the allocation's settings, validated."""
    mode = change.mode if change.mode is not KEEP else (allocation.period_mode or PeriodMode.RESET)
    if mode not in PeriodMode.values:
        raise ValidationFailed("Unknown period mode.", details={"period_mode": mode})
    if change.amount is not KEEP:
        amount = validate_millicredits(change.amount, allow_zero=True)
    elif allocation.period_amount_credits is not None:
        amount = allocation.period_amount_credits
    else:
        amount = default_amount
    if change.rollover_cap is not KEEP:
        cap = (
            None
            if change.rollover_cap is None
            else validate_millicredits(change.rollover_cap, allow_zero=True)
        )
        if cap is not None and mode != PeriodMode.REFILL:
            raise ValidationFailed(
                "A rollover cap needs period_mode refill.", details={"rollover_cap_credits": "refill only"}
            )
    else:
        # Switching to reset drops a cap that only a refill could use.
        cap = allocation.rollover_cap_credits if mode == PeriodMode.REFILL else None
    return mode, amount, cap


def change_period_settings(
    allocation: UserCreditAllocation, change: PeriodChange, *, now: datetime, default_amount: int
) -> dict[str, object]:
    """With the allocation locked (its due boundaries applied): apply ``change`` over its period
    settings and return the audit metadata of what changed. ``default_amount`` is the period
    amount when recurrence is turned on without one. A new or different period starts at the
    start of the period containing ``now``; the balance itself is not touched."""
    if change.empty:
        return {}
    period = (allocation.period or None) if change.period is KEEP else change.period
    if period is None:
        return _stop_recurrence(allocation, change)
    if period not in Period.values:
        raise ValidationFailed("Unknown period.", details={"period": period})
    mode, amount, cap = _merged(allocation, change, default_amount)
    before = (
        allocation.period,
        allocation.period_mode,
        allocation.period_amount_credits,
        allocation.rollover_cap_credits,
    )
    if period != allocation.period:
        allocation.current_period_start = period_start(now, period)
        allocation.next_period_start = next_boundary(allocation.current_period_start, period)
        allocation.period_start_used_credits = allocation.used_credits
    allocation.period, allocation.period_mode = period, mode
    allocation.period_amount_credits, allocation.rollover_cap_credits = amount, cap
    if before == (period, mode, amount, cap):
        return {}
    allocation.save(update_fields=_PERIOD_FIELDS)
    assert allocation.current_period_start is not None
    return {
        "period": period,
        "period_mode": mode,
        "period_amount": amount,
        "rollover_cap": cap,
        "current_period_start": allocation.current_period_start.isoformat(),
    }


# --- applying boundaries -------------------------------------------------------------------


def _room(pool: OrganizationCreditPool, department: Department | None) -> int:
    return max(department.free_credits if department is not None else pool.available_credits, 0)


def _carve(pool: OrganizationCreditPool, department: Department | None, delta: int) -> None:
    if delta == 0:
        return
    if department is not None:
        department.allocated_credits += delta
        department.save(update_fields=["allocated_credits", "updated_at"])
    else:
        pool.allocated_credits += delta
        pool.save(update_fields=["allocated_credits", "updated_at"])


def _apply_boundary(
    pool: OrganizationCreditPool,
    department: Department | None,
    allocation: UserCreditAllocation,
    boundary: datetime,
    *,
    now: datetime,
) -> AllocationPeriod:
    """With pool, department and allocation locked: open the period starting at ``boundary``."""
    assert allocation.period
    assert allocation.period_amount_credits is not None
    before, used, reserved = (
        allocation.allocated_credits,
        allocation.used_credits,
        allocation.reserved_credits,
    )
    unspent = before - used - reserved
    carried = (
        min(unspent, allocation.rollover_cap_credits or 0)
        if allocation.period_mode == PeriodMode.REFILL
        else 0
    )
    budget = allocation.period_amount_credits + carried
    wanted = used + max(budget, reserved) - before
    drawn = min(wanted, _room(pool, department)) if wanted > 0 else 0
    returned = -wanted if wanted < 0 else 0
    allocation.allocated_credits = before + drawn - returned
    _carve(pool, department, drawn - returned)
    row = AllocationPeriod.objects.create(
        allocation=allocation,
        org_id=allocation.org_id,
        department=department,
        period_start=boundary,
        period=allocation.period,
        mode=allocation.period_mode,
        amount=allocation.period_amount_credits,
        rollover_cap=allocation.rollover_cap_credits,
        allocated_before=before,
        allocated_after=allocation.allocated_credits,
        used=used,
        period_used=used - allocation.period_start_used_credits,
        reserved=reserved,
        unspent=unspent,
        carried_over=carried,
        drawn=drawn,
        returned=returned,
        shortfall=max(wanted, 0) - drawn,
        created_at=now,
    )
    allocation.period_start_used_credits = used
    allocation.current_period_start = boundary
    allocation.next_period_start = next_boundary(boundary, allocation.period)
    allocation.save(
        update_fields=[
            "allocated_credits",
            "period_start_used_credits",
            "current_period_start",
            "next_period_start",
            "updated_at",
        ]
    )
    return row


def _audit_boundary(
    row: AllocationPeriod, allocation: UserCreditAllocation, pool: OrganizationCreditPool, actor_label: str
) -> None:
    record_audit_event(
        action="allocation.period_applied",
        actor_label=actor_label,
        org_id=allocation.org_id,
        target_type="allocation",
        target_id=allocation.pk,
        metadata={
            "user_id": allocation.user.username,
            "period_start": row.period_start.isoformat(),
            "period": row.period,
            "mode": row.mode,
            "amount": row.amount,
            "rollover_cap": row.rollover_cap,
            "allocated_before": row.allocated_before,
            "allocated_after": row.allocated_after,
            "period_used": row.period_used,
            "unspent": row.unspent,
            "carried_over": row.carried_over,
            "reserved": row.reserved,
            "drawn": row.drawn,
            "returned": row.returned,
            "shortfall": row.shortfall,
            "department_id": row.department_id,
            "pool_available_after": pool.available_credits,
        },
    )


def apply_due_boundaries_locked(
    pool: OrganizationCreditPool,
    department: Department | None,
    allocation: UserCreditAllocation,
    *,
    now: datetime,
    actor_label: str = PERIOD_ACTOR,
) -> list[AllocationPeriod]:
    """With pool, department and allocation locked: apply every boundary due by ``now``, oldest
    first, one row and one audit event each. Used by the periodic pass and, so that an admin's
    change lands in the current period, by allocate and adjust before they write."""
    rows = []
    for boundary in due_boundaries(allocation, now):
        row = _apply_boundary(pool, department, allocation, boundary, now=now)
        _audit_boundary(row, allocation, pool, actor_label)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class PeriodsApplied:
    allocation_id: int
    org_id: str
    rows: list[AllocationPeriod]

    @property
    def shortfall(self) -> int:
        return sum(row.shortfall for row in self.rows)


class PeriodSkipped(StrEnum):
    """Why a listed allocation's boundaries were not applied."""

    GONE = "gone"  # revoked, or no longer recurring
    NOT_DUE = "not_due"  # applied by someone else meanwhile, or moved to another period
    EXPIRED = "expired"  # past expires_at: the expiry pass hands its credits back
    ORG_INACTIVE = "org_inactive"  # caught up once the organization is active again


def apply_allocation_periods_for(
    *, allocation_id: int, now: datetime, actor_label: str = PERIOD_ACTOR
) -> PeriodsApplied | PeriodSkipped:
    """Apply the due boundaries of one allocation in one transaction (pool → department →
    allocation locked), or say why not. Safe to run twice at once: the second waits for the
    locks, then finds nothing due; the unique (allocation, period_start) backs that up."""
    ref = UserCreditAllocation.objects.filter(pk=allocation_id).values_list("org_id", "department_id").first()
    if ref is None:
        return PeriodSkipped.GONE
    org_id, department_id = ref
    with transaction.atomic():
        pool = lock_pool(org_id)
        try:
            department = lock_department(org_id, department_id) if department_id is not None else None
        except DepartmentNotFound:
            return PeriodSkipped.GONE  # deleted: only possible once the allocation was revoked
        allocation = lock_allocations([allocation_id]).get(allocation_id)
        if allocation is None or not allocation.is_active or not allocation.period:
            return PeriodSkipped.GONE
        if allocation.expires_at is not None and allocation.expires_at <= now:
            return PeriodSkipped.EXPIRED
        if not Organization.objects.filter(pk=org_id, is_active=True).exists():
            return PeriodSkipped.ORG_INACTIVE
        rows = apply_due_boundaries_locked(pool, department, allocation, now=now, actor_label=actor_label)
        if not rows:
            return PeriodSkipped.NOT_DUE
    return PeriodsApplied(allocation_id=allocation_id, org_id=org_id, rows=rows)
