"""Writes to organizations and memberships. Each function is one transaction with its audit."""

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from organizations.credits import member_credits
from organizations.errors import (
    AlreadyMember,
    LastAdmin,
    MemberNotFound,
    OrganizationInactive,
    OrganizationNotFound,
)
from organizations.models import ORG_ID_VALIDATOR, RESERVED_ORG_IDS, Organization, OrganizationMember, User
from orgbilling.audit import record_audit_event
from orgbilling.errors import Conflict, ValidationFailed


def create_organization(
    *,
    org_id: str,
    org_name: str,
    created_by: User | None,
    billing_email: str = "",
    slug: str | None = None,
    actor_label: str = "",
    make_default: bool = True,
) -> Organization:
    """Create an organization with its empty credit pool; the creator becomes its admin, and it
    becomes their default org if they have none — unless ``make_default`` is false: a creator
    named by a system admin is not asked, so who pays for their requests stays as it was."""
    try:
        ORG_ID_VALIDATOR(org_id)
    except DjangoValidationError:
        raise ValidationFailed(
            "Organization ids are 1-64 letters, digits, '-' or '_'.", details={"org_id": org_id}
        ) from None
    if org_id.lower() in RESERVED_ORG_IDS:
        raise ValidationFailed("This organization id is reserved.", details={"org_id": org_id})
    if not org_name.strip():
        raise ValidationFailed("An organization needs a name.", details={"org_name": org_name})
    slug = slug or slugify(org_id)[:64] or org_id.lower()
    try:
        return _create_organization(
            org_id, org_name, created_by, billing_email, slug, actor_label, make_default
        )
    except IntegrityError:
        # Created concurrently by someone else between our check and our insert.
        raise Conflict("An organization with this id or slug exists.", details={"org_id": org_id}) from None


def _create_organization(
    org_id: str,
    org_name: str,
    created_by: User | None,
    billing_email: str,
    slug: str,
    actor_label: str,
    make_default: bool,
) -> Organization:
    with transaction.atomic():
        if Organization.objects.filter(pk=org_id).exists() or Organization.objects.filter(slug=slug).exists():
            raise Conflict("An organization with this id or slug exists.", details={"org_id": org_id})
        org = Organization.objects.create(
            id=org_id,
            org_name=org_name.strip(),
            slug=slug,
            created_by=created_by,
            billing_email=billing_email,
        )
        member_credits().create_pool(org)
        if created_by is not None:
            OrganizationMember.objects.create(
                org=org,
                user=created_by,
                role=OrganizationMember.Role.ADMIN,
                is_default=make_default
                and not OrganizationMember.objects.filter(user=created_by, is_default=True).exists(),
            )
        record_audit_event(
            action="organization.created",
            actor=created_by,
            actor_label=actor_label,
            org_id=org.id,
            target_type="organization",
            target_id=org.id,
            metadata={"org_name": org.org_name},
        )
    return org


def add_member(
    *,
    org_id: str,
    user: User,
    role: str = OrganizationMember.Role.MEMBER,
    is_default: bool = False,
    actor: User | None = None,
    actor_label: str = "",
) -> OrganizationMember:
    """Add an existing user to an organization as an **active** member, without asking them.

    For callers whose say-so is the user's consent: the identity provider's groups, seeds and
    fixtures, a system admin's explicit direct add (audited). Org admins invite instead
    (``organizations.services.invitations.invite_member``). A pending invitation of the user is
    activated; an active or suspended membership raises ``AlreadyMember``.
    """
    if role not in OrganizationMember.Role.values:
        raise ValidationFailed("Unknown role.", details={"role": role})
    try:
        return _add_member(org_id, user, role, is_default, actor, actor_label)
    except IntegrityError:
        # Added concurrently by someone else between our check and our insert.
        if OrganizationMember.objects.filter(org_id=org_id, user=user).exists():
            raise AlreadyMember(details={"org_id": org_id, "user_id": user.username}) from None
        raise


def _add_member(
    org_id: str, user: User, role: str, is_default: bool, actor: User | None, actor_label: str
) -> OrganizationMember:
    with transaction.atomic():
        if not Organization.objects.filter(pk=org_id).exists():
            raise OrganizationNotFound(details={"org_id": org_id})
        invited = (
            OrganizationMember.objects.select_for_update(of=("self",))
            .filter(org_id=org_id, user=user)
            .first()
        )
        if invited is not None and invited.status != OrganizationMember.Status.INVITED:
            raise AlreadyMember(details={"org_id": org_id, "user_id": user.username})
        if is_default:
            OrganizationMember.objects.filter(user=user, is_default=True).update(is_default=False)
        if invited is None:
            member = OrganizationMember.objects.create(
                org_id=org_id, user=user, role=role, is_default=is_default
            )
        else:
            member = invited
            member.role, member.is_default = role, is_default
            member.status, member.joined_at, member.expires_at = (
                OrganizationMember.Status.ACTIVE,
                timezone.now(),
                None,
            )
            member.save(update_fields=["role", "is_default", "status", "joined_at", "expires_at"])
        record_audit_event(
            action="member.added",
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="member",
            target_id=user.username,
            metadata={"role": role, "was_invited": invited is not None},
        )
    return member


def set_default_organization(*, user: User, org_id: str) -> OrganizationMember:
    """Make ``org_id`` the organization that pays for the user's requests by default.

    The membership must be active (else 404 ``organization_not_found``) and the organization
    not deactivated (403 ``organization_inactive``): billing could not charge it.
    """
    with transaction.atomic():
        # All of the user's memberships, in primary-key order: two concurrent calls for one
        # user queue up here instead of deadlocking on each other's ``is_default`` rows.
        memberships = list(
            OrganizationMember.objects.select_for_update(of=("self",)).filter(user=user).order_by("pk")
        )
        member = next(
            (m for m in memberships if m.org_id == org_id and m.status == OrganizationMember.Status.ACTIVE),
            None,
        )
        if member is None:
            raise OrganizationNotFound(details={"org_id": org_id})
        if not Organization.objects.filter(pk=org_id, is_active=True).exists():
            raise OrganizationInactive(details={"org_id": org_id})
        OrganizationMember.objects.filter(user=user, is_default=True).exclude(pk=member.pk).update(
            is_default=False
        )
        member.is_default = True
        member.save(update_fields=["is_default"])
        record_audit_event(
            action="member.default_org_set",
            actor=user,
            org_id=org_id,
            target_type="member",
            target_id=user.username,
        )
    return member


# Membership changes -------------------------------------------------------------------------
#
# "An organization always keeps at least one active admin" is enforced under row locks: each
# change locks the target membership together with every active admin membership of the org,
# in primary-key order, in one statement. Two concurrent demotions of the last two admins
# queue on the same rows; the second re-reads them after the first commits (READ COMMITTED
# re-checks a locked row against the WHERE clause) and sees a single admin left.
# ``remove_member`` also moves credits, so it takes the pool lock first (billing.ledger.locks
# order: pool, then memberships, then allocations).

SETTABLE_STATUSES = (OrganizationMember.Status.ACTIVE, OrganizationMember.Status.SUSPENDED)


@dataclass(frozen=True)
class MemberRemoval:
    org_id: str
    user: User
    role: str
    returned_to_pool: int
    allocation: Any  # the revoked UserCreditAllocation, or None


def _lock_member_and_admins(org_id: str, user: User) -> tuple[OrganizationMember, list[OrganizationMember]]:
    """Lock the user's membership and the org's active admins; return (member, active admins)."""
    is_active_admin = Q(role=OrganizationMember.Role.ADMIN, status=OrganizationMember.Status.ACTIVE)
    rows = list(
        OrganizationMember.objects.select_for_update(of=("self",))
        .filter(Q(org_id=org_id) & (Q(user=user) | is_active_admin))
        .order_by("pk")
    )
    # An invitation is not a membership yet: only its invitee (accept, decline) and the
    # inviter (revoke) act on it, so here it is as absent as no row at all.
    member = next(
        (row for row in rows if row.user_id == user.pk and row.status != OrganizationMember.Status.INVITED),
        None,
    )
    if member is None:
        if not Organization.objects.filter(pk=org_id).exists():
            raise OrganizationNotFound(details={"org_id": org_id})
        raise MemberNotFound(details={"org_id": org_id, "user_id": user.username})
    admins = [
        row
        for row in rows
        if row.role == OrganizationMember.Role.ADMIN and row.status == OrganizationMember.Status.ACTIVE
    ]
    return member, admins


def _ensure_an_admin_remains(
    member: OrganizationMember,
    admins: list[OrganizationMember],
    *,
    username: str,
    role: str | None,
    status: str | None,
) -> None:
    """Refuse a change that takes the org's only active admin out of that role."""
    stays_active_admin = role == OrganizationMember.Role.ADMIN and status == OrganizationMember.Status.ACTIVE
    if member in admins and not stays_active_admin and len(admins) <= 1:
        raise LastAdmin(details={"org_id": member.org_id, "user_id": username})


def update_member(
    *,
    org_id: str,
    user: User,
    role: str | None = None,
    status: str | None = None,
    actor: User | None = None,
    actor_label: str = "",
) -> OrganizationMember:
    """Change a member's role and/or status (``active`` or ``suspended``) in one transaction.

    A suspended member keeps their allocation but cannot bill (the ledger charges only active
    members). Demoting or suspending the org's last active admin raises ``LastAdmin``.
    """
    if role is None and status is None:
        raise ValidationFailed("Give a role or a status to change.")
    if role is not None and role not in OrganizationMember.Role.values:
        raise ValidationFailed("Unknown role.", details={"role": role})
    if status is not None and status not in SETTABLE_STATUSES:
        raise ValidationFailed(
            "A member's status can be set to active or suspended.", details={"status": status}
        )
    with transaction.atomic():
        member, admins = _lock_member_and_admins(org_id, user)
        new_role = role or member.role
        new_status = status or member.status
        _ensure_an_admin_remains(member, admins, username=user.username, role=new_role, status=new_status)
        events: list[tuple[str, dict[str, str]]] = []
        if new_role != member.role:
            events.append(("member.role_changed", {"from": member.role, "to": new_role}))
        if new_status != member.status:
            action = (
                "member.suspended"
                if new_status == OrganizationMember.Status.SUSPENDED
                else "member.reactivated"
            )
            events.append((action, {"from": member.status, "to": new_status}))
        if not events:
            return member
        member.role, member.status = new_role, new_status
        member.save(update_fields=["role", "status"])
        for action, metadata in events:
            record_audit_event(
                action=action,
                actor=actor,
                actor_label=actor_label,
                org_id=org_id,
                target_type="member",
                target_id=user.username,
                metadata=metadata,
            )
    return member


def change_member_role(
    *, org_id: str, user: User, role: str, actor: User | None = None, actor_label: str = ""
) -> OrganizationMember:
    """Make a member an ``admin`` or a plain ``member``; the last active admin stays admin."""
    return update_member(org_id=org_id, user=user, role=role, actor=actor, actor_label=actor_label)


def set_member_status(
    *, org_id: str, user: User, status: str, actor: User | None = None, actor_label: str = ""
) -> OrganizationMember:
    """Suspend (``suspended``) or reactivate (``active``) a member; the last active admin
    cannot be suspended."""
    return update_member(org_id=org_id, user=user, status=status, actor=actor, actor_label=actor_label)


def remove_member(
    *,
    org_id: str,
    user: User,
    actor: User | None = None,
    actor_label: str = "",
    audit_action: str = "member.removed",
) -> MemberRemoval:
    """Remove a member from the organization: revoke their active allocation (its unused
    credits return to the pool) and delete the membership, all in one transaction.

    Credits on hold for calls in flight make the revocation, and so the removal, fail with
    ``allocation_has_active_holds``; the last active admin cannot be removed. Ledger rows
    (allocations, attribution) reference the user, not the membership, so they stay.
    """
    with transaction.atomic():
        # Level 1 first: every allocation of the org is created or revoked under this lock,
        # so the existence check below stays true until commit.
        credits = member_credits()
        credits.lock_pool(org_id)
        member, admins = _lock_member_and_admins(org_id, user)
        _ensure_an_admin_remains(member, admins, username=user.username, role=None, status=None)
        # Credits on hold refuse here, and the whole removal rolls back.
        released = credits.return_member_credits(
            org_id=org_id, user=user, actor=actor, actor_label=actor_label
        )
        allocation, returned = released.allocation, released.returned_to_pool
        role, status = member.role, member.status
        member.delete()
        record_audit_event(
            action=audit_action,
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="member",
            target_id=user.username,
            metadata={
                "role": role,
                "status": status,
                "returned_to_pool": returned,
                "allocation_id": allocation.pk if allocation is not None else None,
            },
        )
    return MemberRemoval(
        org_id=org_id, user=user, role=role, returned_to_pool=returned, allocation=allocation
    )


def leave_organization(*, user: User, org_id: str) -> MemberRemoval:
    """The user leaves ``org_id``: like ``remove_member`` (their allocation's unused credits
    return to the pool; the last active admin cannot leave), audited as ``member.left``.
    Without an active or suspended membership the org is 404 to them (an invitation is
    declined, not left)."""
    if (
        not OrganizationMember.objects.filter(org_id=org_id, user=user)
        .exclude(status=OrganizationMember.Status.INVITED)
        .exists()
    ):
        raise OrganizationNotFound(details={"org_id": org_id})
    return remove_member(org_id=org_id, user=user, actor=user, audit_action="member.left")


def update_organization(
    *, org_id: str, org_name: str | None = None, billing_email: str | None = None
) -> Organization:
    """Rename an organization or change its billing address (None leaves a field as it is).
    Its id and slug never change; (de)activating it is ``set_organization_active``."""
    if org_name is not None and not org_name.strip():
        raise ValidationFailed("An organization needs a name.", details={"org_name": org_name})
    changes = {"org_name": org_name, "billing_email": billing_email}
    fields = [name for name, value in changes.items() if value is not None]
    with transaction.atomic():
        org = Organization.objects.select_for_update().filter(pk=org_id).first()
        if org is None:
            raise OrganizationNotFound(details={"org_id": org_id})
        if fields:
            for name in fields:
                setattr(org, name, changes[name])
            org.save(update_fields=[*fields, "updated_at"])
    return org


def set_organization_active(
    *, org_id: str, is_active: bool, actor: User | None, actor_label: str = ""
) -> Organization:
    """Deactivate an organization (billing refuses its members' requests and new allocations)
    or reactivate it; audited as ``organization.deactivated`` / ``organization.activated``."""
    with transaction.atomic():
        org = Organization.objects.select_for_update().filter(pk=org_id).first()
        if org is None:
            raise OrganizationNotFound(details={"org_id": org_id})
        if org.is_active != is_active:
            org.is_active = is_active
            org.save(update_fields=["is_active", "updated_at"])
            record_audit_event(
                action="organization.activated" if is_active else "organization.deactivated",
                actor=actor,
                actor_label=actor_label,
                org_id=org.id,
                target_type="organization",
                target_id=org.id,
            )
    return org


def set_byok(*, org_id: str, enabled: bool, actor: User) -> Organization:
    """Let the org's members bring their own provider key through the gateway (charged 0), or
    stop them. Audited (``org.byok_changed``)."""
    with transaction.atomic():
        org = Organization.objects.select_for_update().filter(pk=org_id).first()
        if org is None:
            raise OrganizationNotFound(details={"org_id": org_id})
        if org.byok_enabled != enabled:
            org.byok_enabled = enabled
            org.save(update_fields=["byok_enabled"])
            record_audit_event(
                action="org.byok_changed",
                actor=actor,
                org_id=org.id,
                target_type="organization",
                target_id=org.id,
                metadata={"byok_enabled": enabled},
            )
    return org
