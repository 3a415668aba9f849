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
    # One query: a user has a handful of memberships, and this runs on every gateway call.
    memberships = sorted(
        OrganizationMember.objects.filter(user=user).select_related("org").order_by(),
        key=lambda membership: (membership.joined_at, membership.pk),
    )
    for membership in memberships:
        membership.user = user  # the error details name the user; no query for it
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
        _usable(memberships[0])  # every membership is suspended or invited: this raises
    return BillingContext(user=user, org_id=None, source="individual")
