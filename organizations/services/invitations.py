"""Invitations: joining an organization takes the invitee's consent.

An org admin invites a user (by id) or an e-mail address. A user with an account gets an
``invited`` membership, which grants nothing (no access, no billing, no allocation) until they
accept it; an address no single account has gets an ``EmailInvitation`` that waits until
someone signs in with that address verified, and then becomes their ``invited`` membership.
Both answer the inviter with the same ``Invitation``, which says nothing about any account.
The invitee is mailed after commit; they accept or decline, the inviter may revoke.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from organizations.errors import AlreadyMember, InvitationExpired, InvitationNotFound, OrganizationNotFound
from organizations.models import EmailInvitation, Organization, OrganizationMember, User
from organizations.permissions import acts_as_system_admin
from organizations.selectors import user_by_email, user_by_id
from organizations.services.memberships import add_member
from orgbilling.audit import record_audit_event
from orgbilling.errors import Forbidden, ValidationFailed
from orgbilling.mail import queue_email

logger = logging.getLogger(__name__)

INVITED = OrganizationMember.Status.INVITED


@dataclass(frozen=True)
class Invitation:
    """An invitation as its inviter sees it: what they typed (``email`` or ``user_id``), never
    the account an address matched."""

    invitation_id: uuid.UUID
    org_id: str
    email: str | None
    user_id: str | None
    role: str
    invited_by: str | None
    invited_at: datetime
    expires_at: datetime

    @property
    def status(self) -> str:
        return INVITED.value


def normalize_email(email: str) -> str:
    return email.strip().lower()


def invitation_expiry(now: datetime) -> datetime:
    return now + timedelta(days=settings.ORG_INVITATION_TTL_DAYS)


def from_membership(member: OrganizationMember) -> Invitation:
    if member.invitation_id is None or member.expires_at is None:
        # The ``organization_members_invited_shape`` constraint rules this out.
        raise ValueError(f"membership {member.pk} is no invitation")
    return Invitation(
        invitation_id=member.invitation_id,
        org_id=member.org_id,
        email=member.invited_email or None,
        # Named by id only when the inviter named them by id: an address stays an address.
        user_id=None if member.invited_email else member.user.username,
        role=member.role,
        invited_by=member.invited_by.username if member.invited_by is not None else None,
        invited_at=member.invited_at or member.joined_at,
        expires_at=member.expires_at,
    )


def from_email_invitation(row: EmailInvitation) -> Invitation:
    return Invitation(
        invitation_id=row.id,
        org_id=row.org_id,
        email=row.email,
        user_id=None,
        role=row.role,
        invited_by=row.invited_by.username if row.invited_by is not None else None,
        invited_at=row.invited_at,
        expires_at=row.expires_at,
    )


def invite_member(
    *,
    org_id: str,
    role: str,
    actor: User,
    user: User | None = None,
    email: str | None = None,
    actor_label: str = "",
    notify: bool = True,
) -> Invitation:
    """Invite ``user`` or ``email`` (exactly one) to the organization; re-inviting refreshes
    the deadline and role. A user who already is an active or suspended member →
    ``AlreadyMember``. The invitee is mailed once the transaction commits (unless ``notify``
    is false: the demo's made-up people)."""
    if (user is None) == (email is None):
        raise ValidationFailed("Give exactly one of user_id and email.")
    if role not in OrganizationMember.Role.values:
        raise ValidationFailed("Unknown role.", details={"role": role})
    address = normalize_email(email) if email is not None else ""
    for attempt in range(2):
        try:
            with transaction.atomic():
                org = Organization.objects.filter(pk=org_id).first()
                if org is None:
                    raise OrganizationNotFound(details={"org_id": org_id})
                invitee = user or _sole_account(address)
                if invitee is None:
                    invitation = _invite_address(org, address, role, actor)
                else:
                    invitation = _invite_user(org, invitee, address, role, actor)
                record_audit_event(
                    action="member.invited",
                    actor=actor,
                    actor_label=actor_label,
                    org_id=org_id,
                    target_type="invitation",
                    target_id=str(invitation.invitation_id),
                    metadata={"role": role, "by": "email" if address else "user_id"},
                )
                recipient = address or (invitee.email if invitee is not None else "")
                if notify:
                    _mail_invitee(org, recipient, actor, invitation)
            return invitation
        except IntegrityError:
            # Invited concurrently between our read and our insert: once more, now as a refresh.
            if attempt:
                raise
    raise AssertionError("unreachable")


def invite_or_add_member(
    *,
    org_id: str,
    actor: User,
    role: str,
    user_id: str | None = None,
    email: str | None = None,
    status: str = INVITED,
) -> Invitation | OrganizationMember:
    """What an org admin's "add a member" does: invite the user named by ``user_id`` or the
    ``email`` address (an ``Invitation``), or — ``status`` ``active``, system admins only — add
    an existing user directly, without asking them (their ``OrganizationMember``; audited as a
    ``direct-add``). Anyone else asking for a direct add → 403 before any user is looked up.
    Callers check that ``actor`` administers ``org_id``."""
    if status == OrganizationMember.Status.ACTIVE:
        if not acts_as_system_admin(actor):
            raise Forbidden(
                "Only system admins may add an active member directly; invite the user instead.",
                details={"org_id": org_id},
            )
        user = user_by_id(user_id) if user_id is not None else user_by_email(email or "")
        return add_member(org_id=org_id, user=user, role=role, actor=actor, actor_label="direct-add")
    return invite_member(
        org_id=org_id,
        user=user_by_id(user_id) if user_id is not None else None,
        email=email,
        role=role,
        actor=actor,
    )


def _sole_account(address: str) -> User | None:
    users = list(User.objects.filter(email__iexact=address).order_by("pk")[:2])
    return users[0] if len(users) == 1 else None


def _invite_address(org: Organization, address: str, role: str, actor: User) -> Invitation:
    now = timezone.now()
    row, _ = EmailInvitation.objects.select_for_update().get_or_create(
        org=org,
        email=address,
        defaults={"role": role, "invited_by": actor, "invited_at": now, "expires_at": invitation_expiry(now)},
    )
    row.role, row.invited_by, row.invited_at, row.expires_at = role, actor, now, invitation_expiry(now)
    row.save(update_fields=["role", "invited_by", "invited_at", "expires_at"])
    return from_email_invitation(row)


def _invite_user(org: Organization, invitee: User, address: str, role: str, actor: User) -> Invitation:
    now = timezone.now()
    member = (
        OrganizationMember.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(org=org, user=invitee)
        .first()
    )
    if member is not None and member.status != INVITED:
        raise AlreadyMember(details={"org_id": org.id})
    if member is None:
        member = OrganizationMember(org=org, user=invitee, status=INVITED, invitation_id=uuid.uuid4())
    member.role, member.invited_by, member.invited_email = role, actor, address
    member.invited_at, member.expires_at = now, invitation_expiry(now)
    member.save()
    if address:
        # An address invited before it had an account: this membership replaces it.
        EmailInvitation.objects.filter(org=org, email=address).delete()
    return from_membership(member)


def _mail_invitee(org: Organization, recipient: str, actor: User, invitation: Invitation) -> None:
    if not recipient:
        return
    inviter = actor.get_full_name() or actor.email or actor.username
    queue_email(
        subject=f"You are invited to join {org.org_name}",
        body=(
            f"{inviter} invited you to join the organization {org.org_name} ({org.id}) as "
            f"{invitation.role}.\n\nSign in and accept or decline the invitation: "
            f"GET /api/v1/me/invitations, then POST /api/v1/me/invitations/{org.id}/accept "
            f"(or /decline). It expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n\n"
            "Until you accept, nothing changes for you: the organization does not pay for "
            "your requests and cannot see your usage."
        ),
        recipients=[recipient],
    )


def _lock_invitation(user: User, org_id: str) -> OrganizationMember:
    member = (
        OrganizationMember.objects.select_for_update(of=("self",))
        .filter(org_id=org_id, user=user, status=INVITED)
        .first()
    )
    if member is None:
        raise InvitationNotFound(details={"org_id": org_id})
    return member


def accept_invitation(*, user: User, org_id: str) -> OrganizationMember:
    """Make the user's invitation to ``org_id`` an active membership. An expired invitation
    cannot be accepted (``InvitationExpired``, 410): the inviter re-invites."""
    with transaction.atomic():
        member = _lock_invitation(user, org_id)
        now = timezone.now()
        if member.expires_at is not None and member.expires_at <= now:
            raise InvitationExpired(details={"org_id": org_id})
        # Joined now: "the oldest membership pays" must not reach back to the invitation date.
        member.status, member.joined_at, member.expires_at = OrganizationMember.Status.ACTIVE, now, None
        member.save(update_fields=["status", "joined_at", "expires_at"])
        record_audit_event(
            action="member.invitation_accepted",
            actor=user,
            org_id=org_id,
            target_type="member",
            target_id=user.username,
            metadata={"role": member.role, "invitation_id": str(member.invitation_id)},
        )
    return member


def decline_invitation(*, user: User, org_id: str) -> None:
    """Delete the user's invitation to ``org_id`` (expired or not); the org is then 404 to them."""
    with transaction.atomic():
        member = _lock_invitation(user, org_id)
        invitation_id = str(member.invitation_id)
        member.delete()
        record_audit_event(
            action="member.invitation_declined",
            actor=user,
            org_id=org_id,
            target_type="invitation",
            target_id=invitation_id,
        )


def revoke_invitation(*, org_id: str, invitation_id: uuid.UUID, actor: User) -> None:
    """Withdraw a pending invitation of the organization, whether or not it reached an account."""
    with transaction.atomic():
        deleted, _ = OrganizationMember.objects.filter(
            org_id=org_id, invitation_id=invitation_id, status=INVITED
        ).delete()
        if not deleted:
            deleted, _ = EmailInvitation.objects.filter(org_id=org_id, pk=invitation_id).delete()
        if not deleted:
            raise InvitationNotFound(details={"org_id": org_id, "invitation_id": str(invitation_id)})
        record_audit_event(
            action="member.invitation_revoked",
            actor=actor,
            org_id=org_id,
            target_type="invitation",
            target_id=str(invitation_id),
        )


def claim_email_invitations(*, user: User, verified_email: str | None) -> int:
    """Turn the unexpired invitations waiting for ``verified_email`` into the user's ``invited``
    memberships (they still accept or decline). Called at sign-in with the address the identity
    provider verified; None (unverified) claims nothing. Returns how many were claimed."""
    if not verified_email:
        return 0
    address = normalize_email(verified_email)
    # Runs on every sign-in and bearer-token request: one indexed read when nothing waits.
    if not EmailInvitation.objects.filter(email=address).exists():
        return 0
    claimed = 0
    with transaction.atomic():
        waiting = list(
            EmailInvitation.objects.select_for_update()
            .filter(email=address, expires_at__gt=timezone.now())
            .order_by("pk")
        )
        for row in waiting:
            if not OrganizationMember.objects.filter(org_id=row.org_id, user=user).exists():
                OrganizationMember.objects.create(
                    org_id=row.org_id,
                    user=user,
                    role=row.role,
                    status=INVITED,
                    invitation_id=row.id,
                    invited_by=row.invited_by,
                    invited_email=row.email,
                    invited_at=row.invited_at,
                    expires_at=row.expires_at,
                )
                claimed += 1
            row.delete()
    if claimed:
        logger.info("user %s claimed %d e-mail invitation(s)", user.username, claimed)
    return claimed


def prune_expired_invitations(*, older_than_days: int) -> int:
    """Delete invitations that expired more than ``older_than_days`` ago (memberships still
    ``invited`` and e-mail invitations never claimed), each with an audit event. Until then an
    expired invitation still answers 410 ``invitation_expired``, so the invitee learns why.
    Returns how many were deleted."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    pruned = 0
    with transaction.atomic():
        stale_members = list(
            OrganizationMember.objects.select_for_update(of=("self",))
            .filter(status=INVITED, expires_at__lt=cutoff)
            .order_by("pk")
        )
        stale_addresses = list(
            EmailInvitation.objects.select_for_update().filter(expires_at__lt=cutoff).order_by("pk")
        )
        for invitation_id, org_id in [(m.invitation_id, m.org_id) for m in stale_members] + [
            (row.id, row.org_id) for row in stale_addresses
        ]:
            record_audit_event(
                action="member.invitation_pruned",
                actor_label="task:prune_expired_invitations",
                org_id=org_id,
                target_type="invitation",
                target_id=str(invitation_id),
                metadata={"older_than_days": older_than_days},
            )
            pruned += 1
        OrganizationMember.objects.filter(pk__in=[m.pk for m in stale_members]).delete()
        EmailInvitation.objects.filter(pk__in=[row.pk for row in stale_addresses]).delete()
    if pruned:
        logger.info("pruned %d invitation(s) expired over %d days ago", pruned, older_than_days)
    return pruned
