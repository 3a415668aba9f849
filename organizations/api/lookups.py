"""Reads behind the identity and membership API: the caller's profile and memberships, an
org's members and invitations. Finding the user a request names is ``organizations.selectors``."""

from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from organizations.credits import member_credits
from organizations.models import EmailInvitation, OrganizationMember, User
from organizations.permissions import api_key_scope_org_id
from organizations.services.invitations import Invitation, from_email_invitation, from_membership
from orgbilling.errors import ApplicationError


@dataclass(frozen=True)
class PayingAccount:
    """Who pays for the user's requests that name no organization, and whether it can.

    ``org_id`` None with ``refusal`` None: the user's individual credits. A ``refusal`` (the
    error code billing would answer, e.g. ``organization_inactive``) means requests are refused
    until the user picks another default org or the membership is restored.
    """

    org_id: str | None
    source: str
    refusal: ApplicationError | None = None

    @property
    def can_bill(self) -> bool:
        return self.refusal is None

    @property
    def refusal_code(self) -> str | None:
        return self.refusal.code if self.refusal is not None else None


@dataclass(frozen=True)
class MeOverview:
    """The caller, every membership they hold (active or suspended; invitations are listed at
    ``/me/invitations``), and who pays for their requests."""

    user: User
    organizations: list[OrganizationMember]
    billing_context: PayingAccount

    @property
    def default_org_id(self) -> str | None:
        return self.billing_context.org_id


def _paying_account(user: User, memberships: list[OrganizationMember]) -> PayingAccount:
    try:
        context = member_credits().paying_org(user=user)
    except ApplicationError as refusal:
        # The profile must still load when billing would refuse: it is where the user fixes it.
        org_id = refusal.details.get("org_id")
        is_default = any(m.org_id == org_id and m.is_default for m in memberships)
        return PayingAccount(org_id=org_id, source="default" if is_default else "oldest", refusal=refusal)
    return PayingAccount(org_id=context.org_id, source=context.source)


def me_overview(*, user: User) -> MeOverview:
    memberships = (
        OrganizationMember.objects.select_related("org")
        .filter(user=user)
        .exclude(status=OrganizationMember.Status.INVITED)
    )
    scope = api_key_scope_org_id(user)
    if scope is not None:
        # An org-scoped API key sees its org only, and that org is what pays for its requests.
        scoped = list(memberships.filter(org_id=scope))
        try:
            member_credits().paying_org(user=user, requested_org_id=scope)
        except ApplicationError as refusal:
            return MeOverview(user, scoped, PayingAccount(org_id=scope, source="default", refusal=refusal))
        return MeOverview(user, scoped, PayingAccount(org_id=scope, source="default"))
    listed = list(memberships.order_by("-is_default", "joined_at", "id"))
    return MeOverview(user=user, organizations=listed, billing_context=_paying_account(user, listed))


def org_members(*, org_id: str) -> QuerySet[OrganizationMember]:
    """Every member of the org (active or suspended), oldest first. Callers check access first.
    Invitations are not members: ``org_invitations`` lists them without naming any account."""
    return (
        OrganizationMember.objects.select_related("user")
        .filter(org_id=org_id)
        .exclude(status=OrganizationMember.Status.INVITED)
        .order_by("joined_at", "id")
    )


def org_invitations(*, org_id: str) -> list[Invitation]:
    """The org's pending invitations (expired ones included, until revoked or re-sent), to
    accounts and to addresses alike, oldest first. Callers check admin access first."""
    invited = OrganizationMember.objects.select_related("user", "invited_by").filter(
        org_id=org_id, status=OrganizationMember.Status.INVITED
    )
    waiting = EmailInvitation.objects.select_related("invited_by").filter(org_id=org_id)
    rows = [from_membership(m) for m in invited] + [from_email_invitation(r) for r in waiting]
    return sorted(rows, key=lambda row: (row.invited_at, str(row.invitation_id)))


def my_invitations(*, user: User) -> list[OrganizationMember]:
    """The user's unanswered, unexpired invitations, newest first; an org-scoped API key sees
    its own org's only."""
    rows = OrganizationMember.objects.select_related("org", "invited_by").filter(
        user=user, status=OrganizationMember.Status.INVITED, expires_at__gt=timezone.now()
    )
    scope = api_key_scope_org_id(user)
    if scope is not None:
        rows = rows.filter(org_id=scope)
    return list(rows.order_by("-invited_at", "-id"))
