"""An organization's credit grants as its admins see them, with what each has left."""

from dataclasses import dataclass
from datetime import datetime

from billing.ledger.grants import grants_with_usage, remaining


@dataclass(frozen=True)
class GrantView:
    grant_id: int
    credits: int
    remaining_credits: int  # unspent and still in the pool (an expired grant's: what members hold)
    expires_at: datetime | None
    priority: int
    source: str
    created_at: datetime
    expired_at: datetime | None
    forfeited_credits: int
    retained_credits: int
    refunded_credits: int


def org_grants(*, org_id: str) -> list[GrantView]:
    """Every grant of the organization, newest first, with its remaining credits now (the
    pool's usage spread over the grants in burn-down order; ``billing.ledger.grants``). The
    caller has checked the org is theirs to see."""
    grants, _ = grants_with_usage(org_id=org_id)
    grants.sort(key=lambda g: (g.created_at, g.pk), reverse=True)
    return [
        GrantView(
            grant_id=g.pk,
            credits=g.credits,
            remaining_credits=remaining(g),
            expires_at=g.expires_at,
            priority=g.priority,
            source=g.source,
            created_at=g.created_at,
            expired_at=g.expired_at,
            forfeited_credits=g.forfeited_credits,
            retained_credits=g.retained_credits,
            refunded_credits=g.refunded_credits,
        )
        for g in grants
    ]
