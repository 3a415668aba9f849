"""Which account pays for a user's request: an organization's allocation, or their own credits."""

from dataclasses import dataclass
from typing import Literal

from billing.errors import NotAMember, OrganizationInactive
from organizations.models import OrganizationMember, User

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


def resolve_billing_context(*, user: User, requested_org_id: str | None = None) -> BillingContext:
    """Explicit org (must be an active membership of an active org) → default membership →
    oldest active membership → individual credits."""
    memberships = OrganizationMember.objects.filter(
        user=user, status=OrganizationMember.Status.ACTIVE
    ).select_related("org")
    if requested_org_id:
        membership = memberships.filter(org_id=requested_org_id).first()
        if membership is None:
            raise NotAMember(details={"org_id": requested_org_id, "user_id": user.username})
        if not membership.org.is_active:
            raise OrganizationInactive(details={"org_id": requested_org_id})
        return BillingContext(user=user, org_id=membership.org_id, source="explicit")
    candidates = memberships.filter(org__is_active=True).order_by("-is_default", "joined_at", "id")
    membership = candidates.first()
    if membership is None:
        return BillingContext(user=user, org_id=None, source="individual")
    return BillingContext(
        user=user, org_id=membership.org_id, source="default" if membership.is_default else "oldest"
    )
