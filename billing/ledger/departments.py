"""Departments' budgets: carve one from the pool, resize it, hand it back.

A department's ``budget_credits`` counts in the pool's ``allocated_credits`` as one block (pool
``available`` drops by it); its allocations are carved from the budget. Every function is one
transaction locking the pool, then the department (``billing.ledger.locks``), and records an
audit event. Names are unique among an organization's live departments: checked under the pool
lock, which every department write holds, and backed by a partial unique index.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from billing.audit import record_audit_event
from billing.errors import (
    AllocationExceedsPool,
    DepartmentBudgetBelowAllocated,
    DepartmentHasAllocations,
    DepartmentNameTaken,
    OrganizationInactive,
)
from billing.ledger.eligibility import require_active_member
from billing.ledger.locks import lock_department, lock_pool
from billing.ledger.pool import _active_org, _existing_org, _save_pool
from billing.models import Department, OrganizationCreditPool, UserCreditAllocation
from billing.money import validate_millicredits
from organizations.models import User
from orgbilling.errors import ValidationFailed


@dataclass(frozen=True)
class DepartmentDeleted:
    department: Department
    pool: OrganizationCreditPool
    returned_to_pool: int


def _clean_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise ValidationFailed("A department needs a name.", details={"name": "blank"})
    return cleaned


def _require_free_name(org_id: str, name: str, *, except_id: int | None = None) -> None:
    taken = Department.objects.filter(org_id=org_id, name=name, deleted_at__isnull=True)
    if except_id is not None:
        taken = taken.exclude(pk=except_id)
    if taken.exists():
        raise DepartmentNameTaken(details={"name": name})


def _require_members(org_id: str, managers: Sequence[User]) -> None:
    # Under the pool lock: a member removed concurrently took it first.
    for manager in managers:
        require_active_member(org_id, manager)


def _usernames(managers: Sequence[User]) -> list[str]:
    return sorted(manager.username for manager in managers)


def create_department(
    *,
    org_id: str,
    name: str,
    budget: int,
    managers: Sequence[User] = (),
    actor: User | None = None,
    actor_label: str = "",
) -> Department:
    """Create a department whose ``budget`` millicredits are carved from the pool's free credits."""
    budget = validate_millicredits(budget, allow_zero=True)
    name = _clean_name(name)
    _active_org(org_id)
    with transaction.atomic():
        pool = lock_pool(org_id)
        _require_free_name(org_id, name)
        _require_members(org_id, managers)
        if budget > pool.available_credits:
            raise AllocationExceedsPool(
                details={"requested": budget, "available": pool.available_credits, "org_id": org_id}
            )
        department = Department.objects.create(org_id=org_id, name=name, budget_credits=budget)
        department.managers.set(managers)
        pool.allocated_credits += budget
        _save_pool(pool)
        record_audit_event(
            action="department.created",
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="department",
            target_id=department.pk,
            metadata={
                "name": name,
                "budget": budget,
                "managers": _usernames(managers),
                "pool_available_after": pool.available_credits,
            },
        )
    return department


def update_department(
    *,
    org_id: str,
    department_id: int,
    name: str | None = None,
    budget: int | None = None,
    managers: Sequence[User] | None = None,
    actor: User | None = None,
    actor_label: str = "",
) -> Department:
    """Rename, resize (the difference moves between pool and budget; never below what the
    department's allocations hold) or re-staff a department; ``None`` leaves a field alone."""
    if budget is not None:
        budget = validate_millicredits(budget, allow_zero=True)
    if name is not None:
        name = _clean_name(name)
    org = _existing_org(org_id)
    with transaction.atomic():
        pool = lock_pool(org_id)
        department = lock_department(org_id, department_id)
        changes: dict[str, object] = {}
        if name is not None and name != department.name:
            _require_free_name(org_id, name, except_id=department.pk)
            changes["name"] = [department.name, name]
            department.name = name
        if budget is not None and budget != department.budget_credits:
            delta = budget - department.budget_credits
            if budget < department.allocated_credits:
                raise DepartmentBudgetBelowAllocated(
                    details={"requested": budget, "allocated": department.allocated_credits}
                )
            if delta > 0 and not org.is_active:
                raise OrganizationInactive(details={"org_id": org_id})
            if delta > pool.available_credits:
                raise AllocationExceedsPool(
                    details={
                        "requested_increase": delta,
                        "available": pool.available_credits,
                        "org_id": org_id,
                    }
                )
            changes["budget"] = [department.budget_credits, budget]
            department.budget_credits = budget
            pool.allocated_credits += delta
            _save_pool(pool)
        department.save(update_fields=["name", "budget_credits", "updated_at"])
        if managers is not None:
            _require_members(org_id, managers)
            before = _usernames(list(department.managers.all()))
            if before != _usernames(managers):
                department.managers.set(managers)
                changes["managers"] = [before, _usernames(managers)]
        if changes:
            record_audit_event(
                action="department.updated",
                actor=actor,
                actor_label=actor_label,
                org_id=org_id,
                target_type="department",
                target_id=department.pk,
                metadata={**changes, "pool_available_after": pool.available_credits},
            )
    return department


def delete_department(
    *,
    org_id: str,
    department_id: int,
    actor: User | None = None,
    actor_label: str = "",
) -> DepartmentDeleted:
    """Delete a department with no active allocation: its unallocated budget returns to the pool.
    The row stays (``deleted_at``) with ``budget = allocated``: what its revoked allocations
    consumed stays counted, so the pool's sums stay exact."""
    _existing_org(org_id)
    with transaction.atomic():
        pool = lock_pool(org_id)
        department = lock_department(org_id, department_id)
        # Allocations are created under the pool lock, so none can appear before commit.
        active = UserCreditAllocation.objects.filter(department=department, is_active=True).count()
        if active:
            raise DepartmentHasAllocations(
                details={"department_id": department.pk, "active_allocations": active}
            )
        returned = department.budget_credits - department.allocated_credits
        department.budget_credits = department.allocated_credits
        department.deleted_at = timezone.now()
        department.save(update_fields=["budget_credits", "deleted_at", "updated_at"])
        department.managers.clear()
        pool.allocated_credits -= returned
        _save_pool(pool)
        record_audit_event(
            action="department.deleted",
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="department",
            target_id=department.pk,
            metadata={
                "name": department.name,
                "returned_to_pool": returned,
                "kept_used": department.allocated_credits,
                "pool_available_after": pool.available_credits,
            },
        )
    return DepartmentDeleted(department=department, pool=pool, returned_to_pool=returned)
