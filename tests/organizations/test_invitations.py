"""Invitations: adding a member asks for their consent (organizations/services/invitations.py and the
``/members``, ``/invitations``, ``/me/invitations`` and ``/me/organizations/{id}/leave`` API)."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from billing.errors import NotAMember
from billing.models import AuditEvent, OrganizationCreditPool, UserCreditAllocation
from billing.services import (
    add_credits_to_pool,
    allocate_credits_to_user,
    deduct_credits,
    reserve_credits,
    resolve_billing_context,
)
from organizations.models import EmailInvitation, OrganizationMember
from organizations.services import add_member, create_api_key, create_organization
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error, mc
from tests.oidc_provider import new_sub
from tests.organizations.test_oidc_login import browser_sign_in

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib"),
]

ORG = "acme"
MEMBERS = f"/api/v1/organizations/{ORG}/members"
INVITATIONS = f"/api/v1/organizations/{ORG}/invitations"
MINE = "/api/v1/me/invitations"
USAGE = f"/api/v1/org-billing/credits/{ORG}/usage"


@pytest.fixture
def acme():
    admin = UserFactory(username="acme-admin", email="admin@acme.test")
    create_organization(org_id=ORG, org_name="Acme", created_by=admin)
    add_credits_to_pool(org_id=ORG, amount=mc(1000), actor_label="test")
    return admin


@pytest.fixture
def invitee():
    return UserFactory(username="invitee", email="invitee@example.test", first_name="In", last_name="Vitee")


def invite(api_client, admin, **body):
    api_client.force_login(admin)
    response = api_client.post(MEMBERS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def membership(user):
    return OrganizationMember.objects.filter(org_id=ORG, user=user).first()


# Adding makes an invitation -----------------------------------------------------------------


def test_an_invitation_grants_nothing_until_accepted(api_client, acme, invitee):
    body = invite(api_client, acme, email="invitee@example.test", role="admin")

    assert body["status"] == "invited"
    assert membership(invitee).status == "invited"
    api_client.force_login(invitee)
    assert_error(api_client.get(MEMBERS), 404, "organization_not_found")  # not even as admin
    assert_error(api_client.get(USAGE), 404, "organization_not_found")
    me = api_client.get("/api/v1/me").json()
    assert me["organizations"] == [] and me["default_org_id"] is None
    assert resolve_billing_context(user=invitee).source == "individual"
    with pytest.raises(NotAMember):
        resolve_billing_context(user=invitee, requested_org_id=ORG)


def test_an_invitation_never_changes_who_pays(api_client, acme, invitee):
    # given the invitee's only membership is suspended: billing refuses their requests
    home = OrganizationFactory(id="home")
    add_member(org_id=home.id, user=invitee, actor_label="test")
    OrganizationMember.objects.filter(org=home, user=invitee).update(status="suspended")
    with pytest.raises(NotAMember) as before:
        resolve_billing_context(user=invitee)

    invite(api_client, acme, user_id=invitee.username)

    # then it still does, for the same membership: the inviting org does not start paying
    with pytest.raises(NotAMember) as after:
        resolve_billing_context(user=invitee)
    assert after.value.details == before.value.details == {"org_id": "home", "user_id": "invitee"}


def test_an_invited_user_cannot_receive_an_allocation(api_client, acme, invitee):
    invite(api_client, acme, user_id=invitee.username)
    before = OrganizationCreditPool.objects.get(org_id=ORG).allocated_credits

    response = api_client.post(
        f"/api/v1/org-billing/credits/{ORG}/allocate",
        {"user_id": invitee.username, "credits": 10.0},
        format="json",
    )

    assert_error(response, 404, "not_a_member")
    assert not UserCreditAllocation.objects.filter(user=invitee).exists()
    assert OrganizationCreditPool.objects.get(org_id=ORG).allocated_credits == before


def test_an_invitation_is_not_listed_as_a_member_nor_changed_through_the_member_endpoints(
    api_client, acme, invitee
):
    invite(api_client, acme, user_id=invitee.username)

    listed = api_client.get(MEMBERS).json()
    patched = api_client.patch(f"{MEMBERS}/{invitee.username}", {"status": "active"}, format="json")
    dashboard = api_client.get(f"/api/v1/org-billing/billing/org/{ORG}")

    assert [row["user_id"] for row in listed["results"]] == ["acme-admin"]
    assert_error(patched, 404, "member_not_found")
    assert membership(invitee).status == "invited"
    assert dashboard.status_code == 200
    assert dashboard.json()["member_count"] == 1
    assert invitee.email not in dashboard.content.decode()


def test_inviting_an_address_with_or_without_an_account_answers_the_same(api_client, acme, invitee):
    known = invite(api_client, acme, email="INVITEE@example.test")
    unknown = invite(api_client, acme, email="stranger@example.test")

    def shape(body):
        return {
            k: v for k, v in body.items() if k not in ("email", "invitation_id", "invited_at", "expires_at")
        }

    assert shape(known) == shape(unknown)
    assert known["user_id"] is None and known["email"] == "invitee@example.test"
    assert EmailInvitation.objects.filter(email="stranger@example.test", org_id=ORG).exists()
    # the admin's list shows both as sent: addresses, not accounts
    rows = api_client.get(INVITATIONS).json()["results"]
    assert sorted((r["email"], r["user_id"]) for r in rows) == [
        ("invitee@example.test", None),
        ("stranger@example.test", None),
    ]


def test_the_invitee_is_mailed_after_commit(api_client, acme, invitee, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invite(api_client, acme, email="invitee@example.test")
        invite(api_client, acme, email="stranger@example.test")

    assert sorted(m.to[0] for m in mail.outbox) == ["invitee@example.test", "stranger@example.test"]
    assert all("Acme" in m.subject and f"/api/v1/me/invitations/{ORG}/accept" in m.body for m in mail.outbox)


def test_re_inviting_an_active_member_is_409_and_re_inviting_an_invitee_refreshes(api_client, acme, invitee):
    with time_machine.travel(timezone.now() - timedelta(days=10)):
        first = invite(api_client, acme, user_id=invitee.username)

    again = invite(api_client, acme, user_id=invitee.username, role="admin")

    assert again["invitation_id"] == first["invitation_id"]
    assert again["expires_at"] > first["expires_at"] and again["role"] == "admin"
    assert_error(api_client.post(MEMBERS, {"user_id": "acme-admin"}, format="json"), 409, "already_member")


def test_only_system_admins_add_an_active_member_directly(api_client, acme, invitee, staff_user):
    api_client.force_login(acme)
    refused = api_client.post(MEMBERS, {"user_id": invitee.username, "status": "active"}, format="json")
    assert_error(refused, 403, "forbidden")
    assert membership(invitee) is None

    api_client.force_login(staff_user)
    added = api_client.post(MEMBERS, {"email": invitee.email, "status": "active"}, format="json")

    assert added.status_code == 201
    assert (added.json()["user_id"], added.json()["status"]) == (invitee.username, "active")
    event = AuditEvent.objects.get(action="member.added", target_id=invitee.username)
    assert (event.actor, event.actor_label) == (staff_user, "direct-add")


# Answering ----------------------------------------------------------------------------------


def test_the_invitee_lists_and_accepts_and_can_then_be_funded(api_client, acme, invitee):
    invite(api_client, acme, email="invitee@example.test")
    api_client.force_login(invitee)

    listed = api_client.get(MINE).json()
    accepted = api_client.post(f"{MINE}/{ORG}/accept")

    assert [(row["org_id"], row["invited_by"], row["role"]) for row in listed] == [
        (ORG, "acme-admin", "member")
    ]
    assert accepted.status_code == 200 and accepted.json()["status"] == "active"
    assert api_client.get(USAGE).status_code == 200
    assert api_client.get(MINE).json() == []
    allocate_credits_to_user(org_id=ORG, user=invitee, amount=mc(5), actor_label="test")
    assert deduct_credits(user=invitee, org_id=ORG, amount=mc(1), request_id="after-accept").success
    assert AuditEvent.objects.filter(action="member.invitation_accepted", actor=invitee).exists()


def test_declining_deletes_the_invitation_and_the_org_stays_404(api_client, acme, invitee):
    invite(api_client, acme, user_id=invitee.username)
    api_client.force_login(invitee)

    declined = api_client.post(f"{MINE}/{ORG}/decline")

    assert declined.json() == {"declined": True, "org_id": ORG}
    assert membership(invitee) is None
    assert_error(api_client.get(USAGE), 404, "organization_not_found")
    assert_error(api_client.post(f"{MINE}/{ORG}/accept"), 404, "invitation_not_found")


def test_an_expired_invitation_cannot_be_accepted_until_re_sent(api_client, acme, invitee, settings):
    settings.ORG_INVITATION_TTL_DAYS = 3
    invite(api_client, acme, user_id=invitee.username)
    api_client.force_login(invitee)

    with time_machine.travel(timezone.now() + timedelta(days=3, seconds=1)):
        assert api_client.get(MINE).json() == []
        assert_error(api_client.post(f"{MINE}/{ORG}/accept"), 410, "invitation_expired")
    assert membership(invitee).status == "invited"

    invite(api_client, acme, user_id=invitee.username)
    api_client.force_login(invitee)
    assert api_client.post(f"{MINE}/{ORG}/accept").status_code == 200


def test_the_admin_revokes_a_pending_invitation(api_client, acme, invitee):
    sent = invite(api_client, acme, user_id=invitee.username)
    waiting = invite(api_client, acme, email="later@example.test")

    for body in (sent, waiting):
        response = api_client.delete(f"{INVITATIONS}/{body['invitation_id']}")
        assert response.json() == {"revoked": True, "invitation_id": body["invitation_id"]}

    assert api_client.get(INVITATIONS).json()["results"] == []
    assert_error(api_client.delete(f"{INVITATIONS}/{sent['invitation_id']}"), 404, "invitation_not_found")
    api_client.force_login(invitee)
    assert_error(api_client.post(f"{MINE}/{ORG}/accept"), 404, "invitation_not_found")


def test_a_plain_member_or_outsider_cannot_see_or_revoke_invitations(api_client, acme, invitee):
    sent = invite(api_client, acme, user_id=invitee.username)
    plain = UserFactory()
    add_member(org_id=ORG, user=plain, actor_label="test")

    api_client.force_login(plain)
    assert_error(api_client.get(INVITATIONS), 403, "forbidden")
    api_client.force_login(invitee)  # the invitee is no admin of the org either
    assert_error(api_client.delete(f"{INVITATIONS}/{sent['invitation_id']}"), 404, "organization_not_found")
    assert membership(invitee).status == "invited"


def test_an_org_scoped_key_answers_only_its_own_orgs_invitations(api_client, acme, invitee):
    home = OrganizationFactory(id="home")
    add_member(org_id=home.id, user=invitee, actor_label="test")
    invite(api_client, acme, user_id=invitee.username)
    key = create_api_key(user=invitee, name="home only", org_id=home.id)[1]
    api_client.logout()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    assert api_client.get(MINE, **auth).json() == []
    assert_error(api_client.post(f"{MINE}/{ORG}/accept", **auth), 404, "organization_not_found")
    assert_error(
        api_client.post(f"/api/v1/me/organizations/{ORG}/leave", **auth), 404, "organization_not_found"
    )
    assert membership(invitee).status == "invited"


# Addresses without an account ---------------------------------------------------------------


def test_an_address_invitation_waits_for_a_verified_sign_in(api_client, acme, client, keycloak):
    invite(api_client, acme, email="newcomer@example.test")
    unverified, verified = new_sub(), new_sub()
    keycloak.set_user(unverified, {"email": "newcomer@example.test", "email_verified": False})
    keycloak.set_user(verified, {"email": "Newcomer@example.test", "email_verified": True})

    browser_sign_in(client, keycloak, unverified)
    assert not OrganizationMember.objects.filter(org_id=ORG, user__username=unverified).exists()

    client.post("/oidc/logout/")
    browser_sign_in(client, keycloak, verified)
    claimed = OrganizationMember.objects.get(org_id=ORG, user__username=verified)
    assert claimed.status == "invited" and not EmailInvitation.objects.exists()
    assert client.post(f"{MINE}/{ORG}/accept").json()["status"] == "active"


def test_group_sync_still_adds_active_members_and_activates_an_invitation(
    api_client, acme, client, keycloak, settings
):
    settings.OIDC_ORG_GROUPS_SYNC = True
    sub = new_sub()
    user = UserFactory(username=sub, email=f"{sub}@example.test")
    invite(api_client, acme, user_id=sub)
    assert membership(user).status == "invited"
    keycloak.set_user(sub, {"email": f"{sub}@example.test", "groups": [f"/orgs/{ORG}/member"]})

    browser_sign_in(client, keycloak, sub)

    assert membership(user).status == "active"


# Leaving ------------------------------------------------------------------------------------


def test_a_member_leaves_and_their_unused_credits_return_to_the_pool(api_client, acme, invitee):
    add_member(org_id=ORG, user=invitee, actor_label="test")
    allocate_credits_to_user(org_id=ORG, user=invitee, amount=mc(10), actor_label="test")
    deduct_credits(user=invitee, org_id=ORG, amount=mc(4), request_id="before-leaving")
    api_client.force_login(invitee)

    response = api_client.post(f"/api/v1/me/organizations/{ORG}/leave")

    assert response.json() == {"left": True, "org_id": ORG, "returned_to_pool": 6.0}
    assert membership(invitee) is None
    pool = OrganizationCreditPool.objects.get(org_id=ORG)
    assert pool.allocated_credits == mc(4)
    assert AuditEvent.objects.filter(action="member.left", actor=invitee, org_id=ORG).exists()


def test_leaving_refuses_the_last_admin_calls_in_flight_and_non_members(api_client, acme, invitee):
    api_client.force_login(acme)
    assert_error(api_client.post(f"/api/v1/me/organizations/{ORG}/leave"), 409, "last_admin")

    add_member(org_id=ORG, user=invitee, actor_label="test")
    allocate_credits_to_user(org_id=ORG, user=invitee, amount=mc(10), actor_label="test")
    reserve_credits(user=invitee, org_id=ORG, amount=mc(1), request_id="in-flight")
    api_client.force_login(invitee)
    assert_error(api_client.post(f"/api/v1/me/organizations/{ORG}/leave"), 409, "allocation_has_active_holds")
    assert membership(invitee).status == "active"

    stranger = UserFactory()
    invite(api_client, acme, user_id=stranger.username)
    api_client.force_login(stranger)  # invited only: declines, does not leave
    assert_error(api_client.post(f"/api/v1/me/organizations/{ORG}/leave"), 404, "organization_not_found")
    assert_error(api_client.post("/api/v1/me/organizations/nowhere/leave"), 404, "organization_not_found")


def test_invitations_expired_past_the_retention_are_pruned_with_an_audit_event(api_client, acme, invitee):
    from organizations.tasks import prune_expired_invitations

    invite(api_client, acme, user_id=invitee.username)
    invite(api_client, acme, email="nobody-yet@example.test")
    fresh = UserFactory(username="fresh", email="fresh@example.test")
    invite(api_client, acme, user_id=fresh.username)

    with time_machine.travel(timezone.now() + timedelta(days=14 + 29)):
        assert prune_expired_invitations.apply().get() == {"pruned": 0}  # expired, kept 30 days
    with time_machine.travel(timezone.now() + timedelta(days=14 + 31)):
        assert prune_expired_invitations.apply().get() == {"pruned": 3}

    assert not OrganizationMember.objects.filter(org_id=ORG, status="invited").exists()
    assert not EmailInvitation.objects.exists()
    assert AuditEvent.objects.filter(action="member.invitation_pruned", org_id=ORG).count() == 3
    assert OrganizationMember.objects.filter(org_id=ORG, user=acme, status="active").exists()
