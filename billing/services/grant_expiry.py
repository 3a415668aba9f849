"""The periodic pass over credit grants (``billing.tasks.expire_credit_grants`` and the
``expire_credit_grants`` command): expire grants past their ``expires_at`` and let expired
credits that members gave back leave, one pool per transaction (``billing.ledger.grant_expiry``).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from billing.ledger.grant_expiry import GrantExpiryStep, expire_pool_grants, plan_expiry
from billing.ledger.grants import grants_with_usage
from billing.models import CreditGrant, OrganizationCreditPool

GRANT_EXPIRY_ACTOR = "task:expire_credit_grants"


@dataclass(frozen=True)
class GrantExpiryOutcome:
    steps: list[GrantExpiryStep]

    @property
    def expired(self) -> int:
        return sum(1 for step in self.steps if step.newly_expired)

    @property
    def forfeited(self) -> int:
        return sum(step.forfeited for step in self.steps)


def orgs_with_grants_to_check(*, now: datetime) -> list[str]:
    """Organizations with a grant past its expiry not yet expired, or an expired grant whose
    credits members held at its last step (they may have given them back since)."""
    due = Q(expired_at__isnull=True, expires_at__lte=now) | Q(retained_credits__gt=0)
    return sorted(set(CreditGrant.objects.filter(due).values_list("org_id", flat=True)))


def planned_expiry(*, org_id: str, now: datetime) -> list[GrantExpiryStep]:
    """What a pass would do to the org now, read without a lock and changing nothing (the dry
    run, and the pass's test of whether a pool needs its lock at all)."""
    grants, used = grants_with_usage(org_id=org_id)
    pool = OrganizationCreditPool.objects.filter(org_id=org_id).first()
    if pool is None:
        return []
    steps = plan_expiry(
        grants=grants, total=pool.total_credits, allocated=pool.allocated_credits, used=used, now=now
    )
    return [step for step in steps if step.forfeited or step.newly_expired]


def expire_org_grants(
    *, org_id: str, now: datetime | None = None, actor_label: str = GRANT_EXPIRY_ACTOR
) -> list[GrantExpiryStep]:
    """Expire the org's due grants (one transaction under the pool lock); a pool with nothing
    to do is not locked. Safe to run twice at once: the second finds nothing left to do."""
    cutoff = now or timezone.now()
    if not planned_expiry(org_id=org_id, now=cutoff):
        return []
    return expire_pool_grants(org_id=org_id, now=cutoff, actor_label=actor_label)


def iter_expire_credit_grants(
    *, now: datetime | None = None, actor_label: str = GRANT_EXPIRY_ACTOR
) -> Iterator[tuple[str, list[GrantExpiryStep]]]:
    """Every organization's pass, yielding ``(org_id, steps)`` as it goes (progress bars)."""
    cutoff = now or timezone.now()
    for org_id in orgs_with_grants_to_check(now=cutoff):
        yield org_id, expire_org_grants(org_id=org_id, now=cutoff, actor_label=actor_label)


def expire_credit_grants(
    *, now: datetime | None = None, actor_label: str = GRANT_EXPIRY_ACTOR
) -> GrantExpiryOutcome:
    steps: list[GrantExpiryStep] = []
    for _, org_steps in iter_expire_credit_grants(now=now, actor_label=actor_label):
        steps.extend(org_steps)
    return GrantExpiryOutcome(steps=steps)
