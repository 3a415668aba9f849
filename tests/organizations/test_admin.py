"""The Django admin changes memberships and (de)activates organizations through the services:
the last-admin guard holds and every change is audited."""

import pytest
from django.contrib.messages import get_messages

from billing.models import AuditEvent
from organizations.models import Organization, OrganizationMember
from organizations.services import add_member, create_organization, invite_member
from tests.billing.test_admin import change_url, inline_form_data
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    owner = UserFactory(username="owner")
    org = create_organization(org_id="adm-org", org_name="Admin Org", created_by=owner)
    add_member(org_id=org.id, user=UserFactory(username="plain"), actor_label="test")
    return org


def member(org, username):
    return OrganizationMember.objects.get(org=org, user__username=username)


def messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_demoting_the_last_admin_on_the_membership_page_is_refused(admin_client, org):
    response = admin_client.post(change_url(member(org, "owner")), {"role": "member", "status": "active"})

    assert member(org, "owner").role == "admin"
    assert any("last_admin" in text for text in messages(response))


def test_a_role_change_on_the_membership_page_is_audited(admin_client, admin_user, org):
    admin_client.post(change_url(member(org, "plain")), {"role": "admin", "status": "suspended"})

    assert (member(org, "plain").role, member(org, "plain").status) == ("admin", "suspended")
    actions = set(
        AuditEvent.objects.filter(actor=admin_user, target_id="plain").values_list("action", flat=True)
    )
    assert actions == {"member.role_changed", "member.suspended"}


def test_inline_member_edits_go_through_the_services(admin_client, admin_user, org):
    # given the organization's page as rendered, owner first, then the plain member
    data = inline_form_data(admin_client.get(change_url(org)))
    data["members-0-role"] = "member"  # the last admin: refused
    data["members-1-status"] = "suspended"
    data["_save"] = "Save"

    response = admin_client.post(change_url(org), data, follow=True)

    assert member(org, "owner").role == "admin"
    assert member(org, "plain").status == "suspended"
    assert any("last_admin" in text for text in messages(response))
    assert AuditEvent.objects.filter(action="member.suspended", actor=admin_user, target_id="plain").exists()


def test_deactivating_an_organization_in_the_admin_is_audited(admin_client, admin_user, org):
    data = inline_form_data(admin_client.get(change_url(org)))
    data.pop("is_active", None)  # unticked
    data["org_name"] = "Renamed"
    data["_save"] = "Save"

    response = admin_client.post(change_url(org), data)

    assert response.status_code == 302
    saved = Organization.objects.get(pk=org.pk)
    assert (saved.is_active, saved.org_name) == (False, "Renamed")
    assert AuditEvent.objects.filter(
        action="organization.deactivated", actor=admin_user, org_id=org.id
    ).exists()


def test_an_invitation_is_not_activated_in_the_admin(admin_client, org):
    invitee = UserFactory(username="invitee")
    invite_member(org_id=org.id, user=invitee, role="member", actor=org.created_by)
    invited = member(org, "invitee")

    response = admin_client.post(change_url(invited), {"role": "member", "status": "active"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["status"]
    assert member(org, "invitee").status == "invited"
