"""Writes to users. From identity-provider claims (Keycloak): created on first sight, profile
and the system-admin flag kept in step with the claims, optional org memberships from groups;
and, for seeds, load tests and local development, users named directly (``ensure_user``,
``ensure_dev_superuser``).

Both the browser sign-in and bearer tokens go through ``sync_user_from_claims``, so one person
is one ``User`` whichever way they arrive. ``username`` is the token's ``sub``.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from organizations.models import Organization, OrganizationMember, User
from organizations.services.invitations import claim_email_invitations
from organizations.services.memberships import add_member, change_member_role
from orgbilling.audit import record_audit_event
from orgbilling.errors import ApplicationError

logger = logging.getLogger(__name__)

PROVIDER_LABEL = "keycloak"
GROUPS_SYNC_LABEL = "keycloak-groups-sync"
_USERNAME_MAX = User._meta.get_field("username").max_length or 150
_ROLE_RANK: dict[str, int] = {OrganizationMember.Role.MEMBER.value: 0, OrganizationMember.Role.ADMIN.value: 1}


class InvalidClaims(ValueError):
    """The claims cannot identify a user (no usable ``sub``)."""


@dataclass(frozen=True)
class ClaimsIdentity:
    username: str
    email: str | None  # None: the provider did not verify it, so it is not stored
    first_name: str
    last_name: str
    is_staff: bool
    org_roles: dict[str, str] = field(default_factory=dict)


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path (``realm_access.roles``); None when any step is missing."""
    value: Any = claims
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def _text(claims: Mapping[str, Any], name: str, limit: int) -> str:
    value = claims.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def holds_staff_role(claims: Mapping[str, Any]) -> bool:
    """True when the configured role (or group, with or without its leading ``/``) is in any
    of the configured claims."""
    role = settings.OIDC_STAFF_ROLE
    if not role:
        return False
    wanted = {role, f"/{role.lstrip('/')}"}
    return any(
        value in wanted
        for path in settings.OIDC_STAFF_ROLE_CLAIMS
        for value in _strings(_claim(claims, path))
    )


def org_roles_from_groups(claims: Mapping[str, Any]) -> dict[str, str]:
    """``{org_id: role}`` from groups like ``/orgs/<org_id>/admin``; admin wins over member."""
    prefix = "/" + settings.OIDC_ORG_GROUPS_PREFIX.strip("/") + "/"
    roles: dict[str, str] = {}
    for group in _strings(_claim(claims, settings.OIDC_ORG_GROUPS_CLAIM)):
        path = "/" + group.lstrip("/")
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        if len(parts) != 2 or parts[1] not in _ROLE_RANK or not parts[0]:
            continue
        org_id, role = parts
        if _ROLE_RANK[role] >= _ROLE_RANK.get(roles.get(org_id, ""), -1):
            roles[org_id] = role
    return roles


def identity_from_claims(claims: Mapping[str, Any]) -> ClaimsIdentity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > _USERNAME_MAX:
        raise InvalidClaims("The token has no usable `sub` claim.")
    return ClaimsIdentity(
        username=sub,
        # Only a verified address is taken: an unverified one could claim someone else's
        # invitations or billing mail. Without verification the stored address is kept.
        email=_text(claims, "email", 254) if claims.get("email_verified") is True else None,
        first_name=_text(claims, "given_name", 150),
        last_name=_text(claims, "family_name", 150),
        is_staff=holds_staff_role(claims),
        org_roles=org_roles_from_groups(claims) if settings.OIDC_ORG_GROUPS_SYNC else {},
    )


def sync_user_from_claims(
    *, claims: Mapping[str, Any], via: str, ip_address: str | None = None, sign_in: bool = False
) -> User:
    """Create or update the user ``claims["sub"]`` names: email and names from the claims,
    ``is_staff`` from the staff role (``auth.role_granted`` / ``auth.role_revoked`` when it
    changes). ``sign_in`` records ``auth.sign_in`` for an active user (browser sign-in).
    A deactivated user stays deactivated: callers refuse them.
    """
    identity = identity_from_claims(claims)
    with transaction.atomic():
        user, created = User.objects.get_or_create(
            username=identity.username,
            defaults={
                "email": identity.email or "",
                "first_name": identity.first_name,
                "last_name": identity.last_name,
            },
        )
        # Concurrent first requests of one person serialize here, so each change is audited once.
        user = User.objects.select_for_update(of=("self",)).get(pk=user.pk)
        _apply_identity(user, identity, created=created, via=via, ip_address=ip_address)
        if sign_in and user.is_active:
            record_audit_event(
                action="auth.sign_in",
                actor=user,
                target_type="user",
                target_id=user.username,
                metadata={"method": via},
                ip_address=ip_address,
            )
    claim_email_invitations(user=user, verified_email=identity.email)
    if identity.org_roles:
        _sync_org_memberships(user, identity.org_roles)
    return user


def _apply_identity(
    user: User, identity: ClaimsIdentity, *, created: bool, via: str, ip_address: str | None
) -> None:
    changed: list[str] = []
    if created:
        user.set_unusable_password()
        changed.append("password")
        record_audit_event(
            action="auth.user_created",
            actor_label=PROVIDER_LABEL,
            target_type="user",
            target_id=user.username,
            metadata={"via": via},
            ip_address=ip_address,
        )
    for name in ("email", "first_name", "last_name"):
        if getattr(identity, name) is not None and getattr(user, name) != getattr(identity, name):
            setattr(user, name, getattr(identity, name))
            changed.append(name)
    if user.is_staff != identity.is_staff:
        user.is_staff = identity.is_staff
        changed.append("is_staff")
        record_audit_event(
            action="auth.role_granted" if identity.is_staff else "auth.role_revoked",
            actor_label=PROVIDER_LABEL,
            target_type="user",
            target_id=user.username,
            metadata={"role": settings.OIDC_STAFF_ROLE, "flag": "is_staff", "via": via},
            ip_address=ip_address,
        )
    if changed:
        user.save(update_fields=changed)


def _sync_org_memberships(user: User, org_roles: dict[str, str]) -> None:
    """Add missing memberships and align roles with the groups claim. Unknown orgs are skipped;
    memberships the claim does not mention are left alone (removing one moves credits: an org
    admin does that). A refused change (the org's last admin) is logged and skipped."""
    known = set(Organization.objects.filter(pk__in=org_roles).values_list("pk", flat=True))
    # A pending invitation is no membership: the groups claim is consent, so add_member
    # activates it.
    current = dict(
        OrganizationMember.objects.filter(user=user, org_id__in=known)
        .exclude(status=OrganizationMember.Status.INVITED)
        .values_list("org_id", "role")
    )
    for org_id, role in sorted(org_roles.items()):
        if org_id not in known:
            logger.info("groups claim names unknown organization %s; skipped", org_id)
            continue
        try:
            if org_id not in current:
                add_member(org_id=org_id, user=user, role=role, actor_label=GROUPS_SYNC_LABEL)
            elif current[org_id] != role:
                change_member_role(org_id=org_id, user=user, role=role, actor_label=GROUPS_SYNC_LABEL)
        except ApplicationError as error:
            logger.warning("groups sync for %s in %s refused: %s", user.username, org_id, error.code)


# Users named directly ----------------------------------------------------------------------


def ensure_user(*, username: str, email: str = "", first_name: str = "", last_name: str = "") -> User:
    """Get or create a user by ``username`` (the OIDC ``sub``); fills empty profile fields."""
    user, created = User.objects.get_or_create(
        username=username, defaults={"email": email, "first_name": first_name, "last_name": last_name}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def ensure_dev_superuser(*, username: str, password: str) -> User:
    """The local development admin: staff, superuser, with the given password."""
    with transaction.atomic():
        user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@localhost"})
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(password)
        user.save()
    return user
