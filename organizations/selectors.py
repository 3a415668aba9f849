"""Who may see and manage which organization. Every API view starts here.

An organization the caller may not see answers 404 (``OrganizationNotFound``), never 403, so
ids cannot be probed; a member who may see it but not change it gets 403. A caller signed in
with an org-scoped API key sees that organization only, whatever their roles elsewhere.
"""

from dataclasses import dataclass
from typing import Literal

from billing.errors import OrganizationNotFound, UserNotFound
from organizations.models import Organization, OrganizationMember, User
from orgbilling.errors import Forbidden

Role = Literal["system_admin", "admin", "member"]


@dataclass(frozen=True)
class OrgAccess:
    org: Organization
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role in ("system_admin", "admin")


def api_key_scope_org_id(user: User) -> str | None:
    """The organization the caller's API key is scoped to, or None (an unscoped key, a session,
    a bearer token). ``ApiKeyAuthentication`` sets it on the user object of the request."""
    return getattr(user, "api_key_scope_org_id", None)


def in_api_key_scope(user: User, org_id: str) -> bool:
    """Whether the caller's credentials reach ``org_id`` (always, unless an org-scoped key)."""
    scope = api_key_scope_org_id(user)
    return scope is None or scope == org_id


def acts_as_system_admin(user: User) -> bool:
    """A system admin whose credentials are not narrowed to one organization by an API key.
    System-wide views (the system dashboard, acting for other users) check this, not
    ``is_staff``."""
    return bool(user.is_staff) and api_key_scope_org_id(user) is None


def org_access(*, user: User, org_id: str) -> OrgAccess:
    """The caller's access to ``org_id``: system admins see every org; others only the orgs
    where they are an active member. An org-scoped API key reaches its own org only: any
    other is 404, even for a system admin."""
    if not in_api_key_scope(user, org_id):
        raise OrganizationNotFound(details={"org_id": org_id})
    if user.is_staff:
        org = Organization.objects.filter(pk=org_id).first()
        if org is None:
            raise OrganizationNotFound(details={"org_id": org_id})
        return OrgAccess(org=org, role="system_admin")
    membership = (
        OrganizationMember.objects.select_related("org")
        .filter(org_id=org_id, user=user, status=OrganizationMember.Status.ACTIVE)
        .first()
    )
    if membership is None:
        raise OrganizationNotFound(details={"org_id": org_id})
    return OrgAccess(org=membership.org, role=membership.role)  # type: ignore[arg-type]


def org_admin_access(*, user: User, org_id: str) -> OrgAccess:
    """Like ``org_access``, and 403 unless the caller administers the org."""
    access = org_access(user=user, org_id=org_id)
    if not access.is_admin:
        raise Forbidden("Only organization admins can do this.", details={"org_id": org_id})
    return access


def active_memberships(*, user: User) -> list[OrganizationMember]:
    return list(
        OrganizationMember.objects.select_related("org")
        .filter(user=user, status=OrganizationMember.Status.ACTIVE)
        .order_by("-is_default", "joined_at", "id")
    )


def user_by_id(user_id: str) -> User:
    """The user whose API ``user_id`` (``User.username``, the OIDC ``sub``) this is, or 404
    ``user_not_found``."""
    user = User.objects.filter(username=user_id).first()
    if user is None:
        raise UserNotFound(details={"user_id": user_id})
    return user
