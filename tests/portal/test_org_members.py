"""The org page's invite, set-allocation and remove forms: the API's serializers and services,
the API's words next to the field, and nothing changed by a refused or a member's request."""

import pytest
from django.test import Client

from billing.models import UserCreditAllocation
from organizations.api.lookups import org_invitations
from organizations.models import OrganizationMember
from tests.factories import OrganizationFactory
from tests.helpers import mc, pool_of

pytestmark = pytest.mark.django_db


def _allocated(org, username: str) -> int:
    allocation = UserCreditAllocation.objects.filter(org=org, user__username=username, is_active=True).first()
    return allocation.allocated_credits if allocation else 0


def test_an_admin_invites_by_email_and_the_api_lists_the_invitation(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/invite", {"email": "New@Example.com", "role": "member"})

    assert response.status_code == 302
    assert [i.email for i in org_invitations(org_id=org.id)] == ["new@example.com"]
    api = client.get("/api/v1/organizations/acme/invitations").json()
    assert "new@example.com" in str(api)


def test_an_invalid_email_is_refused_next_to_the_field_in_the_api_words(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/invite", {"email": "not-an-address", "role": "member"})

    assert response.status_code == 400
    body = response.content.decode()
    assert '<p class="field-error" id="invite-email-error">Enter a valid email address.</p>' in body
    assert 'value="not-an-address" aria-invalid="true"' in body
    assert org_invitations(org_id=org.id) == []


def test_a_member_cannot_invite(client: Client, acme) -> None:
    org, _, member = acme
    client.force_login(member)

    response = client.post("/portal/orgs/acme/invite", {"email": "x@example.com", "role": "member"})

    assert response.status_code == 403
    assert "Only organization admins can do this." in response.content.decode()
    assert org_invitations(org_id=org.id) == []


def test_another_orgs_invite_is_the_404_page(client: Client, acme) -> None:
    other = OrganizationFactory(id="globex")
    client.force_login(acme[1])

    response = client.post("/portal/orgs/globex/invite", {"email": "x@example.com", "role": "member"})

    assert response.status_code == 404
    assert org_invitations(org_id=other.id) == []


def test_an_admin_sets_a_members_total_and_the_pool_follows(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/adjust", {"user_id": "mia", "credits": "40"})

    assert response.status_code == 302
    assert _allocated(org, "mia") == mc(40)
    assert pool_of(org).allocated_credits == mc(40)


def test_a_total_beyond_the_pool_is_refused_and_changes_nothing(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/adjust", {"user_id": "mia", "credits": "5000"})

    assert response.status_code == 409
    body = response.content.decode()
    section = body[body.index('id="manage-members"') :]
    assert 'class="field-error"' in section[: section.index("</section>")]
    assert _allocated(org, "mia") == mc(100)
    assert pool_of(org).allocated_credits == mc(100)


def test_a_negative_total_is_refused_in_the_api_words(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/adjust", {"user_id": "mia", "credits": "-1"})
    api = client.patch(
        "/api/v1/org-billing/credits/acme/allocations/mia", {"credits": -1}, content_type="application/json"
    )

    assert response.status_code == api.status_code == 400
    assert api.json()["error"]["details"]["fields"]["credits"][0] in response.content.decode()
    assert _allocated(org, "mia") == mc(100)


def test_an_admin_removes_a_member_and_their_credits_return(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/remove", {"user_id": "mia"})

    assert response.status_code == 302
    assert not OrganizationMember.objects.filter(org=org, user__username="mia").exists()
    assert pool_of(org).allocated_credits == 0


def test_a_member_cannot_remove_anyone(client: Client, acme) -> None:
    org, _, member = acme
    client.force_login(member)

    response = client.post("/portal/orgs/acme/remove", {"user_id": "boss"})

    assert response.status_code == 403
    assert OrganizationMember.objects.filter(org=org, user__username="boss").exists()


def test_a_member_sees_no_member_management(client: Client, acme) -> None:
    client.force_login(acme[2])

    body = client.get("/portal/orgs/acme/").content.decode()

    assert 'id="manage-members"' not in body
    assert 'id="usage-range"' not in body
