"""Expiring credit grants: the unspent credits of an expired grant leave the pool through the
ledger (a ``credit_expiry`` billing-history row and a ``grant.expired`` audit event), never the
credits members already hold.

The rule (one pool at a time, under its lock, after a checkpoint of ``billing.ledger.grants``):

1. A grant past its ``expires_at`` expires once (``expired_at`` is set under the lock). Of its
   unspent credits, as many as the pool has **unallocated** leave at once
   (``forfeited_credits``); the rest stay because members (or department budgets) hold them
   (``retained_credits``). No allocation is ever lowered.
2. Afterwards an expired grant's unspent credits are spent first (burn-down order), and they may
   stay in the pool only as far as members hold credits: whenever the expired grants' unspent
   credits exceed what is allocated and not used (an allocation revoked, lowered or expired
   gave credits back), the excess leaves at the next pass. A purchase made meanwhile is never
   taken: it is counted as the pool's unallocated credits only after expired credits are gone.

Each step that moves credits writes one history row keyed ``grant-<id>-expiry-<forfeited
before>``: the unique key makes a step impossible to apply twice, whatever two workers do.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.audit import record_audit_event
from billing.ledger.grants import burn_down_key, checkpoint, remaining
from billing.ledger.locks import lock_pool
from billing.models import CreditGrant, OrganizationCreditPool, OrgBillingHistory
from billing.money import millicredits_to_credits


@dataclass(frozen=True)
class GrantExpiryStep:
    grant_id: int
    org_id: str
    forfeited: int  # left the pool in this step
    retained: int  # unspent credits of the grant still in the pool after it
    newly_expired: bool


def plan_expiry(
    *, grants: list[CreditGrant], total: int, allocated: int, used: int, now: datetime
) -> list[GrantExpiryStep]:
    """What a pass does to one pool, in memory: ``grants`` are the pool's grants with their
    consumption up to date; they are changed (``expired_at``, ``forfeited_credits``,
    ``retained_credits``) and the steps returned. Pure: the dry run uses it as it is."""
    steps: dict[int, GrantExpiryStep] = {}
    available = total - allocated
    due = [g for g in grants if g.expired_at is None and g.expires_at is not None and g.expires_at <= now]
    for grant in sorted(due, key=lambda g: (g.expires_at, g.pk)):
        leave = min(remaining(grant), available)
        grant.expired_at = now
        grant.forfeited_credits += leave
        available -= leave
        steps[grant.pk] = GrantExpiryStep(grant.pk, grant.org_id, leave, remaining(grant), True)
    expired = [g for g in grants if g.expired_at is not None]
    excess = sum(remaining(g) for g in expired) - (allocated - used)
    for grant in sorted(expired, key=burn_down_key, reverse=True):
        if excess <= 0:
            break
        leave = min(excess, remaining(grant))
        if leave <= 0:
            continue
        grant.forfeited_credits += leave
        excess -= leave
        before = steps.get(grant.pk)
        steps[grant.pk] = GrantExpiryStep(
            grant.pk,
            grant.org_id,
            leave + (before.forfeited if before else 0),
            remaining(grant),
            before is not None and before.newly_expired,
        )
    for grant in expired:
        if grant.retained_credits != remaining(grant) and grant.pk not in steps:
            steps[grant.pk] = GrantExpiryStep(grant.pk, grant.org_id, 0, remaining(grant), False)
        grant.retained_credits = remaining(grant)
    return list(steps.values())


def expire_pool_grants(*, org_id: str, now: datetime, actor_label: str) -> list[GrantExpiryStep]:
    """Apply ``plan_expiry`` to one pool under its lock: the pool's total drops by what leaves,
    each step that moves credits writes its history row and audit event."""
    with transaction.atomic():
        pool = lock_pool(org_id)
        grants = checkpoint(pool)
        forfeited_before = {g.pk: g.forfeited_credits for g in grants}
        steps = plan_expiry(
            grants=grants,
            total=pool.total_credits,
            allocated=pool.allocated_credits,
            used=pool.used_credits,
            now=now,
        )
        by_id = {g.pk: g for g in grants}
        for step in steps:
            grant = by_id[step.grant_id]
            grant.save(update_fields=["expired_at", "forfeited_credits", "retained_credits", "updated_at"])
            pool.total_credits -= step.forfeited
            if step.forfeited or step.newly_expired:
                _record_step(pool, grant, step, forfeited_before[grant.pk], now, actor_label)
        if any(step.forfeited for step in steps):
            pool.save(update_fields=["total_credits", "updated_at"])
    return steps


def _record_step(
    pool: OrganizationCreditPool,
    grant: CreditGrant,
    step: GrantExpiryStep,
    forfeited_before: int,
    now: datetime,
    actor_label: str,
) -> None:
    history = None
    if step.forfeited:
        history = OrgBillingHistory.objects.create(
            org_id=pool.org_id,
            event_type=OrgBillingHistory.EventType.CREDIT_EXPIRY,
            external_id=f"grant-{grant.pk}-expiry-{forfeited_before}",
            credits=step.forfeited,
            status="completed",
            description=f"{_credits(step.forfeited)} credits of grant #{grant.pk} expired",
            metadata={"grant_id": grant.pk, "retained_credits": step.retained, "as_of": now.isoformat()},
            occurred_at=timezone.now(),
        )
    record_audit_event(
        action="grant.expired" if step.newly_expired else "grant.expired_credits_returned",
        actor_label=actor_label,
        org_id=pool.org_id,
        target_type="credit_grant",
        target_id=grant.pk,
        metadata={
            "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
            "forfeited": step.forfeited,
            "retained": step.retained,
            "total_after": pool.total_credits,
            "pool_available_after": pool.available_credits,
            "history_id": history.pk if history else None,
        },
    )


def _credits(millicredits: int) -> str:
    return f"{millicredits_to_credits(millicredits).normalize():,f}"
