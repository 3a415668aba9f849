"""Expiring allocations past their ``expires_at``: the unused credits return to the pool.

An expired allocation already refuses new charges and holds (the charging services check
``expires_at``); expiring it deactivates the row the way ``revoke_allocation`` does, so the
pool's sums stay exact: the row keeps what it consumed (``allocated = used``) and the rest is
handed back (to its department's budget when it has one). Locks follow ``billing.ledger.locks``
(pool, then the department, then the allocation).
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from billing.audit import record_audit_event
from billing.errors import DepartmentNotFound
from billing.ledger.locks import lock_allocations, lock_department, lock_pool
from billing.models import UserCreditAllocation

logger = logging.getLogger(__name__)

EXPIRY_ACTOR = "task:expire_allocations"


class Skipped(StrEnum):
    """Why an allocation listed as past its expiry was left alone."""

    GONE = "gone"  # no longer active (revoked or expired by someone else meanwhile)
    EXTENDED = "extended"  # its expires_at was moved into the future meanwhile
    HAS_HOLDS = "has_holds"  # a call is running on it; retried on the next pass


@dataclass(frozen=True)
class ExpiredAllocation:
    allocation_id: int
    org_id: str
    user_id: int
    returned_to_pool: int
    used: int


@dataclass(frozen=True)
class ExpiryOutcome:
    """What one pass did: ``skipped_with_holds`` allocations still had credits on hold."""

    expired: list[ExpiredAllocation]
    skipped_with_holds: list[int]

    @property
    def returned_to_pool(self) -> int:
        return sum(item.returned_to_pool for item in self.expired)


def allocations_past_expiry(*, now: datetime) -> QuerySet[UserCreditAllocation]:
    """Active allocations whose ``expires_at`` has passed, oldest expiry first."""
    return UserCreditAllocation.objects.filter(is_active=True, expires_at__lte=now).order_by(
        "expires_at", "pk"
    )


def expire_allocation(
    *, allocation_id: int, now: datetime | None = None, actor_label: str = EXPIRY_ACTOR
) -> ExpiredAllocation | Skipped:
    """Deactivate one expired allocation and return its unused credits to the pool.

    Changes nothing and says why (``Skipped``) when the allocation is no longer active, was
    extended meanwhile, or still has credits on hold: a call is running on it, and its hold
    settles or expires within ``CREDIT_RESERVATION_TTL_SECONDS`` (then the next pass expires it).
    """
    cutoff = now or timezone.now()
    ref = UserCreditAllocation.objects.filter(pk=allocation_id).values_list("org_id", "department_id").first()
    if ref is None:
        return Skipped.GONE
    org_id, department_id = ref
    with transaction.atomic():
        pool = lock_pool(org_id)
        # The department is fixed at creation, so it is locked before the allocation (lock
        # order). A department with an active allocation cannot be deleted: a deleted one means
        # the allocation was revoked meanwhile.
        try:
            department = lock_department(org_id, department_id) if department_id is not None else None
        except DepartmentNotFound:
            return Skipped.GONE
        allocation = lock_allocations([allocation_id]).get(allocation_id)
        # Re-checked under the locks: an admin may have extended or revoked it meanwhile.
        if allocation is None or not allocation.is_active:
            return Skipped.GONE
        if allocation.expires_at is None or allocation.expires_at > cutoff:
            return Skipped.EXTENDED
        if allocation.reserved_credits:
            return Skipped.HAS_HOLDS
        returned = allocation.allocated_credits - allocation.used_credits
        allocation.allocated_credits = allocation.used_credits
        allocation.is_active = False
        allocation.revoked_at = cutoff
        allocation.save(update_fields=["allocated_credits", "is_active", "revoked_at", "updated_at"])
        if department is not None:
            # Back to the department's budget, which stays carved from the pool.
            department.allocated_credits -= returned
            department.save(update_fields=["allocated_credits", "updated_at"])
        else:
            pool.allocated_credits -= returned
            pool.save(update_fields=["allocated_credits", "updated_at"])
        record_audit_event(
            action="allocation.expired",
            actor_label=actor_label,
            org_id=org_id,
            target_type="allocation",
            target_id=allocation.pk,
            metadata={
                "user_id": allocation.user.username,
                "expires_at": allocation.expires_at.isoformat(),
                "returned_to_pool": returned,
                "used": allocation.used_credits,
                "pool_available_after": pool.available_credits,
                "department_id": department_id,
            },
        )
    return ExpiredAllocation(
        allocation_id=allocation.pk,
        org_id=org_id,
        user_id=allocation.user_id,
        returned_to_pool=returned,
        used=allocation.used_credits,
    )


def iter_expire_allocations(
    *, now: datetime | None = None, actor_label: str = EXPIRY_ACTOR
) -> Iterator[tuple[int, ExpiredAllocation | Skipped]]:
    """Expire every allocation past its expiry, one transaction each, yielding
    ``(allocation_id, outcome)`` as it goes (for progress bars). Safe to run twice at once:
    each allocation is re-checked under its locks."""
    cutoff = now or timezone.now()
    ids = list(allocations_past_expiry(now=cutoff).values_list("pk", flat=True))
    for allocation_id in ids:
        yield (
            allocation_id,
            expire_allocation(allocation_id=allocation_id, now=cutoff, actor_label=actor_label),
        )


def expire_allocations(*, now: datetime | None = None, actor_label: str = EXPIRY_ACTOR) -> ExpiryOutcome:
    """Expire every allocation past its ``expires_at``; see ``expire_allocation``."""
    expired: list[ExpiredAllocation] = []
    skipped: list[int] = []
    for allocation_id, outcome in iter_expire_allocations(now=now, actor_label=actor_label):
        if isinstance(outcome, ExpiredAllocation):
            expired.append(outcome)
        elif outcome is Skipped.HAS_HOLDS:
            skipped.append(allocation_id)
    if skipped:
        logger.info("expire_allocations: %d allocation(s) still hold credits; retried next run", len(skipped))
    return ExpiryOutcome(expired=expired, skipped_with_holds=skipped)
