"""Row locks of the ledger. Every service that writes a balance takes its locks through these.

Locking policy (the one rule that keeps the ledger deadlock-free):

1. Locks are taken inside the service's own ``transaction.atomic()`` block with
   ``SELECT … FOR UPDATE`` (``of=("self",)``, so joined rows are never locked by accident).
2. Order: the organization's **credit pool** first, then the **department** whose budget
   the write touches (one at most), then its **allocations in ascending primary key order**,
   then **reservations**. An allocation's department is fixed when it is created, so a service
   reads it before locking the allocation and locks the department first. An individual
   balance stands in for pool and allocation when the user bills without an organization (the
   individual → organization migration, the one writer of both, locks the org's pool, then the
   individual balance, then the allocation: ``billing.ledger.individual_migration``). A
   service may skip a level it does not write (``reserve_credits`` touches only the
   allocation), but never takes a lock of an earlier level after one of a later level.
3. Idempotency checks (``request_id`` lookups) run *after* the first lock is held: everyone
   who could write the same key holds that lock first, so a committed earlier write is always
   visible to the check (READ COMMITTED takes a fresh snapshot per statement).
4. A **credit request** row (``lock_credit_request``) is locked before everything above: its
   approval then raises the allocation through the usual services (like a purchase row before
   the pool, ``billing.payments.purchases``).
5. No outbound call, task or e-mail happens while locks are held; those go through
   ``transaction.on_commit``.
"""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Exists, OuterRef

from billing.errors import CreditRequestNotFound, DepartmentNotFound, NoActiveAllocation, OrganizationNotFound
from billing.ledger.eligibility import member_refusal
from billing.models import (
    CreditRequest,
    CreditReservation,
    Department,
    IndividualCreditBalance,
    OrganizationCreditPool,
    UserCreditAllocation,
)
from organizations.models import OrganizationMember


def _assert_in_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("row locks must be taken inside transaction.atomic()")


def lock_pool(org_id: str) -> OrganizationCreditPool:
    """Lock and return the organization's pool (level 1)."""
    _assert_in_transaction()
    try:
        return OrganizationCreditPool.objects.select_for_update(of=("self",)).get(org_id=org_id)
    except OrganizationCreditPool.DoesNotExist:
        raise OrganizationNotFound(details={"org_id": org_id}) from None


def lock_department(org_id: str, department_id: int) -> Department:
    """Lock a live department of the organization (after its pool, before allocations), or
    raise ``DepartmentNotFound`` (a deleted one, or one of another organization, is not found)."""
    _assert_in_transaction()
    department = (
        Department.objects.select_for_update(of=("self",))
        .filter(org_id=org_id, pk=department_id, deleted_at__isnull=True)
        .first()
    )
    if department is None:
        raise DepartmentNotFound(details={"org_id": org_id, "department_id": department_id})
    return department


def lock_active_allocation(org_id: str, user_id: int) -> UserCreditAllocation:
    """Lock the active allocation of an *active member* (level 2), or raise why there is none."""
    _assert_in_transaction()
    active_member = OrganizationMember.objects.filter(
        org_id=OuterRef("org_id"), user_id=OuterRef("user_id"), status=OrganizationMember.Status.ACTIVE
    )
    allocation = (
        UserCreditAllocation.objects.select_for_update(of=("self",))
        .filter(org_id=org_id, user_id=user_id, is_active=True)
        .filter(Exists(active_member))
        .first()
    )
    if allocation is not None:
        return allocation
    status = (
        OrganizationMember.objects.filter(org_id=org_id, user_id=user_id)
        .values_list("status", flat=True)
        .first()
    )
    refusal = member_refusal(org_id, user_id, status)
    if refusal is not None:
        raise refusal
    raise NoActiveAllocation(details={"org_id": org_id, "user_id": user_id})


def lock_allocations(allocation_ids: Iterable[int]) -> dict[int, UserCreditAllocation]:
    """Lock several allocations in ascending id order (level 2); return them by id."""
    _assert_in_transaction()
    ids = sorted(set(allocation_ids))
    rows = UserCreditAllocation.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk")
    return {row.pk: row for row in rows}


def lock_individual_balance(user_id: int) -> IndividualCreditBalance:
    """Lock a user's individual balance (stands in for levels 1-2), creating it empty if absent."""
    _assert_in_transaction()
    balance = IndividualCreditBalance.objects.select_for_update(of=("self",)).filter(user_id=user_id).first()
    if balance is None:
        IndividualCreditBalance.objects.get_or_create(user_id=user_id)
        balance = IndividualCreditBalance.objects.select_for_update(of=("self",)).get(user_id=user_id)
    return balance


def lock_reservation(reservation_id: int) -> CreditReservation:
    """Lock a reservation (level 3). Call after its pool/allocation (or balance) are locked."""
    _assert_in_transaction()
    return CreditReservation.objects.select_for_update(of=("self",)).get(pk=reservation_id)


def lock_credit_request(org_id: str, request_id: int) -> CreditRequest:
    """Lock a credit request of the organization (before its pool), or raise
    ``CreditRequestNotFound``."""
    _assert_in_transaction()
    request = (
        CreditRequest.objects.select_for_update(of=("self",)).filter(org_id=org_id, pk=request_id).first()
    )
    if request is None:
        raise CreditRequestNotFound(details={"org_id": org_id, "request_id": request_id})
    return request
