"""Which account pays for a user's request: an organization's allocation, or their own credits."""

from dataclasses import dataclass
from functools import cache
from typing import Literal

from billing.errors import NotAMember
from billing.ledger.eligibility import member_refusal, org_refusal
from organizations.models import Organization, OrganizationMember, User
from orgbilling.db import Columns, fetch_instances

ContextSource = Literal["explicit", "default", "oldest", "individual"]


@dataclass(frozen=True)
class BillingContext:
    """``org_id`` is None when the user's individual credits pay."""

    user: User
    org_id: str | None
    source: ContextSource

    @property
    def is_individual(self) -> bool:
        return self.org_id is None


def _usable(membership: OrganizationMember) -> OrganizationMember:
    # The membership is judged before its organization: this picks among the user's memberships.
    refusal = member_refusal(membership.org_id, membership.user.username, membership.status) or org_refusal(
        membership.org_id, membership.org.is_active
    )
    if refusal is not None:
        raise refusal
    return membership


_MEMBER = Columns(OrganizationMember, "m")
_ORG = Columns(Organization, "o")


@cache
def _memberships_sql() -> str:
    # One prepared query: a user has a handful of memberships, and this runs on every gateway call.
    # An invitation the user has not accepted is no membership: it never pays, and never makes
    # billing refuse (an org cannot change how a user is billed by inviting them).
    return (
        f"SELECT {_MEMBER.sql}, {_ORG.sql} FROM organization_members m"
        " JOIN organizations o ON o.id = m.org_id"
        f" WHERE m.user_id = %(user_id)s AND m.status <> '{OrganizationMember.Status.INVITED.value}'"
        " ORDER BY m.joined_at, m.id"
    )


def resolve_billing_context(*, user: User, requested_org_id: str | None = None) -> BillingContext:
    """Explicit org → the default membership → the oldest membership → individual credits.

    Only a user with no membership at all (invitations not counted) falls back to individual
    credits. When the
    membership that would pay is suspended or its organization deactivated, the request is
    refused rather than silently billed to another organization (docs/decisions.md).
    """
    memberships = []
    for membership, org in fetch_instances(_memberships_sql(), {"user_id": user.pk}, _MEMBER, _ORG):
        membership.org, membership.user = org, user
        memberships.append(membership)
    if requested_org_id is not None:
        chosen = next((m for m in memberships if m.org_id == requested_org_id), None)
        if chosen is None:
            raise NotAMember(details={"org_id": requested_org_id, "user_id": user.username})
        return BillingContext(user=user, org_id=_usable(chosen).org_id, source="explicit")
    default = next((m for m in memberships if m.is_default), None)
    if default is not None:
        return BillingContext(user=user, org_id=_usable(default).org_id, source="default")
    oldest = next((m for m in memberships if m.status == OrganizationMember.Status.ACTIVE), None)
    if oldest is not None:
        return BillingContext(user=user, org_id=_usable(oldest).org_id, source="oldest")
    if memberships:
        _usable(memberships[0])  # every membership is suspended: this raises
    return BillingContext(user=user, org_id=None, source="individual")
