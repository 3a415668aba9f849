"""The org page's "Credit grants" table for admins: each grant of the pool through the API's
selector (``billing.selectors.grants``), with what it has left and whether it expires soon."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.selectors.grants import GrantView, org_grants

# A grant expiring within this is highlighted: an admin has a week to spend or top up.
EXPIRING_SOON = timedelta(days=7)


@dataclass(frozen=True)
class GrantRow:
    grant: GrantView
    expiring_soon: bool  # not expired yet, and expires within EXPIRING_SOON of now
    percent_remaining: int  # for the bar of remaining vs credits


def grant_rows(*, org_id: str, now: datetime) -> list[GrantRow]:
    """The org's grants, newest first (one query). The caller has checked admin access."""
    rows = []
    for grant in org_grants(org_id=org_id):
        soon = (
            grant.expired_at is None
            and grant.expires_at is not None
            and now < grant.expires_at <= now + EXPIRING_SOON
        )
        percent = (
            max(0, min(100, round(100 * grant.remaining_credits / grant.credits))) if grant.credits else 0
        )
        rows.append(GrantRow(grant=grant, expiring_soon=soon, percent_remaining=percent))
    return rows
