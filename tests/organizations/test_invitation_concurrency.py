"""Invitations under concurrency: real threads, each on its own connection."""

import pytest

from organizations.errors import InvitationNotFound
from organizations.models import EmailInvitation, OrganizationMember
from organizations.services import accept_invitation, create_organization, invite_member, revoke_invitation
from tests.concurrency import run_concurrently
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin():
    admin = UserFactory(username="race-admin")
    create_organization(org_id="race", org_name="Race", created_by=admin)
    return admin


def test_concurrent_invitations_of_one_address_make_one_invitation(admin):
    results = run_concurrently(
        lambda _: invite_member(org_id="race", email="Same@Example.test", role="member", actor=admin), 8
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    row = EmailInvitation.objects.get()
    assert row.email == "same@example.test"
    assert {r.invitation_id for r in results} == {row.id}


def test_concurrent_invitations_of_one_user_make_one_membership(admin):
    invitee = UserFactory(username="race-invitee")

    results = run_concurrently(
        lambda _: invite_member(org_id="race", user=invitee, role="member", actor=admin), 8
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    member = OrganizationMember.objects.get(org_id="race", user=invitee)
    assert member.status == "invited"
    assert {r.invitation_id for r in results} == {member.invitation_id}


@pytest.mark.parametrize("round_", range(5))
def test_accept_and_revoke_racing_never_both_succeed(admin, round_):
    invitee = UserFactory(username=f"racer-{round_}")
    invitation = invite_member(org_id="race", user=invitee, role="member", actor=admin)

    def act(index: int):
        if index == 0:
            return accept_invitation(user=invitee, org_id="race")
        return revoke_invitation(org_id="race", invitation_id=invitation.invitation_id, actor=admin)

    accepted, revoked = run_concurrently(act, 2)

    member = OrganizationMember.objects.filter(org_id="race", user=invitee).first()
    if isinstance(accepted, OrganizationMember):
        assert isinstance(revoked, InvitationNotFound)
        assert member is not None and member.status == "active"
    else:
        assert isinstance(accepted, InvitationNotFound) and revoked is None
        assert member is None
