"""The reference documents' individual → organization migration: a user's remaining individual
credits (total − used − reserved) move into an organization, where the pool's total grows by
them and the user's allocation is raised by them (carved from the pool like any allocation, so
the pool reconciles). Credits held for calls in flight stay on the individual balance.

Each move is once: its ledger entry's key names the user and the organization (a unique
column), so a second run, or two runs at once, move nothing more. Locks: the organization's
pool, then the user's individual balance, then (through ``allocate_credits_to_user``) the
allocation. A charge on the individual balance waits for the balance's lock and then sees the
moved credits gone (or the move sees the charge's).
"""

from dataclasses import dataclass

from django.db import transaction

from billing.audit import record_audit_event
from billing.errors import AllocationInOtherDepartment
from billing.ledger.eligibility import require_active_member
from billing.ledger.individual import change_individual_total
from billing.ledger.locks import lock_individual_balance, lock_pool
from billing.ledger.pool import add_credits_to_pool, allocate_credits_to_user
from billing.models import IndividualCreditBalance, IndividualCreditEntry, UserCreditAllocation
from billing.money import millicredits_to_credits
from organizations.models import User


@dataclass(frozen=True)
class MigrationPlan:
    """What a migration of ``user`` into ``org_id`` would do now (read without locks)."""

    user: User
    org_id: str
    movable: int  # millicredits: total − used − reserved
    held: int  # millicredits on hold for calls in flight: they stay
    already_moved: bool


@dataclass(frozen=True)
class MigrationOutcome:
    plan: MigrationPlan
    moved: int  # millicredits moved now (0: nothing to move, or moved before)
    allocation_id: int | None = None


def migration_key(*, user: User, org_id: str) -> str:
    """The idempotency key of the move of ``user``'s individual credits into ``org_id``."""
    return f"individual-to-org:{org_id}:{user.pk}"


def plan_individual_migration(*, user: User, org_id: str) -> MigrationPlan:
    """What ``migrate_individual_credits`` would move now (for ``--dry-run``)."""
    balance = IndividualCreditBalance.objects.filter(user=user).first()
    done = IndividualCreditEntry.objects.filter(external_id=migration_key(user=user, org_id=org_id)).exists()
    return MigrationPlan(
        user=user,
        org_id=org_id,
        movable=0 if done or balance is None else balance.free_credits,
        held=balance.reserved_credits if balance is not None else 0,
        already_moved=done,
    )


def migrate_individual_credits(
    *, user: User, org_id: str, actor_label: str, actor: User | None = None
) -> MigrationOutcome:
    """Move ``user``'s free individual credits into ``org_id``: the pool's total and the user's
    allocation grow by them, the individual total shrinks by them (ledger entry
    ``migrated_to_org``, audited). The user must be an active member; an allocation in a
    department is refused (its budget would not grow). Nothing to move, or moved before: no
    change."""
    key = migration_key(user=user, org_id=org_id)
    with transaction.atomic():
        lock_pool(org_id)
        require_active_member(org_id, user)
        department_id = (
            UserCreditAllocation.objects.filter(org_id=org_id, user=user, is_active=True)
            .values_list("department_id", flat=True)
            .first()
        )
        if department_id is not None:
            raise AllocationInOtherDepartment(
                "The member's allocation belongs to a department; individual credits move into the "
                "pool's own allocations only.",
                details={"user_id": user.username, "allocation_department_id": department_id},
            )
        balance = lock_individual_balance(user.pk)
        balance.user = user
        done = IndividualCreditEntry.objects.filter(external_id=key).exists()
        plan = MigrationPlan(
            user=user,
            org_id=org_id,
            movable=0 if done else balance.free_credits,
            held=balance.reserved_credits,
            already_moved=done,
        )
        if plan.movable <= 0:
            return MigrationOutcome(plan=plan, moved=0)
        amount = plan.movable
        description = f"{millicredits_to_credits(amount)} individual credits of {user.username} moved in"
        change_individual_total(
            balance=balance,
            kind=IndividualCreditEntry.Kind.MIGRATED_TO_ORG,
            credits=-amount,
            external_id=key,
            actor=actor,
            actor_label=actor_label,
            reason=description,
            org_id=org_id,
            metadata={"held_kept": plan.held},
        )
        add_credits_to_pool(
            org_id=org_id,
            amount=amount,
            actor=actor,
            actor_label=actor_label,
            external_id=key,
            description=description,
        )
        change = allocate_credits_to_user(
            org_id=org_id, user=user, amount=amount, actor=actor, actor_label=actor_label
        )
    return MigrationOutcome(plan=plan, moved=amount, allocation_id=change.allocation.pk)


def leave_individual_credits(*, user: User, org_id: str, actor_label: str) -> MigrationPlan:
    """Record (audited as ``individual.migration_left``) that ``user``'s individual credits stay
    individual rather than move into ``org_id``; no balance changes."""
    plan = plan_individual_migration(user=user, org_id=org_id)
    with transaction.atomic():
        record_audit_event(
            action="individual.migration_left",
            actor_label=actor_label,
            org_id=org_id,
            target_type="individual_balance",
            target_id=user.username,
            metadata={"credits_left": plan.movable, "held": plan.held},
        )
    return plan
