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


def _usable(membership: OrganizationMember) -> OrganizationMember:
    if membership.status != OrganizationMember.Status.ACTIVE:
        raise NotAMember(details={"org_id": membership.org_id, "user_id": membership.user.username})
    if not membership.org.is_active:
        raise OrganizationInactive(details={"org_id": membership.org_id})
    return membership


def resolve_billing_context(*, user: User, requested_org_id: str | None = None) -> BillingContext:
    """Explicit org → the default membership → the oldest membership → individual credits.

    Only a user with no membership at all falls back to individual credits. When the
    membership that would pay is suspended or its organization deactivated, the request is
    refused rather than silently billed to another organization (docs/decisions.md).
    """
    memberships = OrganizationMember.objects.filter(user=user).select_related("org", "user")
    if requested_org_id is not None:
        membership = memberships.filter(org_id=requested_org_id).first()
        if membership is None:
            raise NotAMember(details={"org_id": requested_org_id, "user_id": user.username})
        return BillingContext(user=user, org_id=_usable(membership).org_id, source="explicit")
    default = memberships.filter(is_default=True).first()
    if default is not None:
        return BillingContext(user=user, org_id=_usable(default).org_id, source="default")
    oldest = memberships.filter(status=OrganizationMember.Status.ACTIVE).order_by("joined_at", "id").first()
    if oldest is not None:
        return BillingContext(user=user, org_id=_usable(oldest).org_id, source="oldest")
    inactive = memberships.order_by("joined_at", "id").first()
    if inactive is not None:
        _usable(inactive)  # every membership is suspended or invited: this raises
    return BillingContext(user=user, org_id=None, source="individual")
