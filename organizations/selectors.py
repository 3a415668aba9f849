"""Reads of users, memberships and API keys. Who may see which organization is
``organizations.permissions``."""

from django.db.models import QuerySet

from organizations.errors import AmbiguousEmail, ApiKeyNotFound, UserNotFound
from organizations.models import ApiKey, OrganizationMember, User


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


def user_by_email(email: str) -> User:
    """The one user with this email (case-insensitive); 404 if none, 400 if several. Only for
    system admins' direct adds: it tells whether an address has an account."""
    users = list(User.objects.filter(email__iexact=email).order_by("pk")[:2])
    if not users:
        raise UserNotFound(details={"email": email})
    if len(users) > 1:
        raise AmbiguousEmail(details={"email": email})
    return users[0]


def administers_org(*, user: User, org_id: str) -> bool:
    """Whether ``user`` is an active admin member of ``org_id`` (a system admin's staff role
    does not count: this is membership only)."""
    return OrganizationMember.objects.filter(
        org_id=org_id, user=user, role=OrganizationMember.Role.ADMIN, status=OrganizationMember.Status.ACTIVE
    ).exists()


# API keys -------------------------------------------------------------------------------------


def user_api_keys(*, user: User) -> QuerySet[ApiKey]:
    """The user's keys, newest first, revoked and expired ones included."""
    return ApiKey.objects.filter(user=user).select_related("user").order_by("-created_at", "-id")


def org_api_keys(*, org_id: str) -> QuerySet[ApiKey]:
    """Keys scoped to the org, whoever owns them. Callers check access first."""
    return ApiKey.objects.filter(org_id=org_id).select_related("user").order_by("-created_at", "-id")


def own_api_key(*, user: User, key_id: int) -> ApiKey:
    """One of the user's keys; 404 ``api_key_not_found`` for anybody else's."""
    key = user_api_keys(user=user).filter(pk=key_id).first()
    if key is None:
        raise ApiKeyNotFound(details={"key_id": key_id})
    return key


def org_api_key(*, org_id: str, key_id: int) -> ApiKey:
    """A key scoped to the org; 404 ``api_key_not_found`` for any other key."""
    key = org_api_keys(org_id=org_id).filter(pk=key_id).first()
    if key is None:
        raise ApiKeyNotFound(details={"key_id": key_id})
    return key
