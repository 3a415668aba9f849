"""Who may see and manage which organization, and who acts as a system admin. Every API view
starts here.

One rule decides "system admin": ``acts_as_system_admin``. A user is one when their account is
staff (``is_staff``, synced from the identity provider's staff role) and their credentials are
not narrowed away by an org-scoped API key: such a key still acts as staff inside its own
organization (``org_id`` given), never system-wide (no ``org_id``).

An organization the caller may not see answers 404 (``OrganizationNotFound``), never 403, so
ids cannot be probed; a member who may see it but not change it gets 403. A caller signed in
with an org-scoped API key sees that organization only, whatever their roles elsewhere.
"""

from dataclasses import dataclass
from typing import Any, Literal, cast

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from organizations.errors import OrganizationNotFound
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

    @property
    def is_system_admin(self) -> bool:
        return self.role == "system_admin"


def api_key_scope_org_id(user: User) -> str | None:
    """The organization the caller's API key is scoped to, or None (an unscoped key, a session,
    a bearer token). ``ApiKeyAuthentication`` sets it on the user object of the request."""
    return getattr(user, "api_key_scope_org_id", None)


def in_api_key_scope(user: User, org_id: str) -> bool:
    """Whether the caller's credentials reach ``org_id`` (always, unless an org-scoped key)."""
    scope = api_key_scope_org_id(user)
    return scope is None or scope == org_id


def acts_as_system_admin(user: User, *, org_id: str | None = None) -> bool:
    """Whether ``user`` acts as a system admin: a staff account whose credentials reach
    ``org_id`` — or, with no ``org_id`` (system-wide views, acting for other users, individual
    credits), whose credentials are not narrowed to one organization by an API key at all.

    The one place "system admin" is decided; nothing else reads ``is_staff`` for it."""
    if not user.is_staff:
        return False
    if org_id is None:
        return api_key_scope_org_id(user) is None
    return in_api_key_scope(user, org_id)


def org_access(*, user: User, org_id: str) -> OrgAccess:
    """The caller's access to ``org_id``: system admins see every org; others only the orgs
    where they are an active member. An org-scoped API key reaches its own org only: any
    other is 404, even for a system admin."""
    if not in_api_key_scope(user, org_id):
        raise OrganizationNotFound(details={"org_id": org_id})
    if acts_as_system_admin(user, org_id=org_id):
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


class IsSystemAdmin(BasePermission):
    """DRF permission of the system-wide views: ``acts_as_system_admin`` with no org."""

    message = "Only system admins can see the system overview."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and acts_as_system_admin(cast(User, user)))
