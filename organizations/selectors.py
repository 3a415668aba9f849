"""Reads of users and memberships. Who may see which organization is
``organizations.permissions``."""

from organizations.errors import UserNotFound
from organizations.models import OrganizationMember, User


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


def administers_org(*, user: User, org_id: str) -> bool:
    """Whether ``user`` is an active admin member of ``org_id`` (a system admin's staff role
    does not count: this is membership only)."""
    return OrganizationMember.objects.filter(
        org_id=org_id, user=user, role=OrganizationMember.Role.ADMIN, status=OrganizationMember.Status.ACTIVE
    ).exists()
