"""/api/v1/organizations/{org_id}/members: list, add, change role/suspend, remove."""

import pytest

from billing.errors import NotAMember
from billing.models import AuditEvent, OrganizationCreditPool, UserCreditAllocation
from billing.services import deduct_credits, reserve_credits
from organizations.models import OrganizationMember
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.django_db


def members_url(org_id: str) -> str:
    return f"/api/v1/organizations/{org_id}/members"


def member_url(org_id: str, user_id: str) -> str:
    return f"/api/v1/organizations/{org_id}/members/{user_id}"


@pytest.fixture
def org_setup(make_funded_member):
    """An org with an admin and a funded member, an outsider, and another org."""
    org, member, allocation = make_funded_member(pool=1000, allocation=100)
    admin = UserFactory(username="org-admin")
    add_member(org_id=org.id, user=admin, role="admin")
    other_admin = UserFactory(username="other-admin")
    other_org = OrganizationFactory(id="other-org", created_by=other_admin)
    add_member(org_id=other_org.id, user=UserFactory(username="other-member", email="secret@other.test"))
    return {
        "org": org,
        "admin": admin,
        "member": member,
        "allocation": allocation,
        "outsider": UserFactory(username="outsider"),
        "other_org": other_org,
        "other_admin": other_admin,
    }


def _state(org) -> tuple:
    return snapshot_balances(), sorted(
        OrganizationMember.objects.filter(org=org).values_list("user__username", "role", "status")
    )


# GET members -------------------------------------------------------------------------------


def test_an_org_admin_lists_every_member_with_pagination(api_client, org_setup):
    org, admin, member = org_setup["org"], org_setup["admin"], org_setup["member"]
    suspended = UserFactory()
    add_member(org_id=org.id, user=suspended)
    OrganizationMember.objects.filter(org=org, user=suspended).update(status="suspended")
    api_client.force_login(admin)

    response = api_client.get(members_url(org.id))

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and body["next"] is None
    rows = {r["user_id"]: r for r in body["results"]}
    assert set(rows) == {member.username, admin.username, suspended.username}
    assert rows[member.username] == {
        "user_id": member.username,
        "email": member.email,
        "first_name": "",
        "last_name": "",
        "role": "member",
        "status": "active",
        "joined_at": rows[member.username]["joined_at"],
    }
    assert rows[suspended.username]["status"] == "suspended"

    page = api_client.get(members_url(org.id), {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]


def test_the_member_list_filters_by_status_and_role(api_client, org_setup):
    org, admin = org_setup["org"], org_setup["admin"]
    suspended = UserFactory()
    add_member(org_id=org.id, user=suspended)
    OrganizationMember.objects.filter(org=org, user=suspended).update(status="suspended")
    api_client.force_login(admin)

    by_status = api_client.get(members_url(org.id), {"status": "suspended"}).json()
    by_role = api_client.get(members_url(org.id), {"role": "admin"}).json()

    assert [r["user_id"] for r in by_status["results"]] == [suspended.username]
    assert [r["user_id"] for r in by_role["results"]] == [admin.username]


@pytest.mark.parametrize("query", [{"status": "gone"}, {"role": "owner"}, {"page": "x"}])
def test_bad_member_list_filters_are_400_or_404(api_client, org_setup, query):
    api_client.force_login(org_setup["admin"])

    response = api_client.get(members_url(org_setup["org"].id), query)

    assert response.status_code in (400, 404)
    assert set(response.json()) == {"error"}


def test_a_system_admin_lists_any_orgs_members(api_client, org_setup, staff_user):
    api_client.force_login(staff_user)

    response = api_client.get(members_url(org_setup["org"].id))

    assert response.status_code == 200
    assert response.json()["count"] == 2


def test_a_plain_member_may_not_list_members(api_client, org_setup):
    api_client.force_login(org_setup["member"])

    assert_error(api_client.get(members_url(org_setup["org"].id)), 403, "forbidden")


@pytest.mark.parametrize("who", ["outsider", "other_admin"])
def test_an_outsider_or_another_orgs_admin_gets_404(api_client, org_setup, who):
    api_client.force_login(org_setup[who])

    assert_error(api_client.get(members_url(org_setup["org"].id)), 404, "organization_not_found")


def test_a_suspended_admin_can_no_longer_see_the_org(api_client, org_setup):
    org, admin = org_setup["org"], org_setup["admin"]
    second = UserFactory()
    add_member(org_id=org.id, user=second, role="admin")
    OrganizationMember.objects.filter(org=org, user=admin).update(status="suspended")
    api_client.force_login(admin)

    assert_error(api_client.get(members_url(org.id)), 404, "organization_not_found")


def test_listing_members_needs_a_signed_in_user(api_client, org_setup):
    assert_error(api_client.get(members_url(org_setup["org"].id)), 401, "unauthenticated")


def test_listing_an_unknown_org_is_404(api_client, staff_user):
    api_client.force_login(staff_user)

    assert_error(api_client.get(members_url("no-such-org")), 404, "organization_not_found")


# POST members ------------------------------------------------------------------------------


def test_an_admin_invites_an_existing_user_by_user_id(api_client, org_setup):
    org, admin, outsider = org_setup["org"], org_setup["admin"], org_setup["outsider"]
    api_client.force_login(admin)

    response = api_client.post(members_url(org.id), {"user_id": outsider.username}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["user_id"], body["role"], body["status"]) == (outsider.username, "member", "invited")
    membership = OrganizationMember.objects.get(org=org, user=outsider)
    assert (membership.role, membership.status, membership.invited_by) == ("member", "invited", admin)
    event = AuditEvent.objects.filter(action="member.invited").latest("pk")
    assert (event.actor, event.target_id) == (admin, body["invitation_id"])
    assert not AuditEvent.objects.filter(action="member.added", target_id=outsider.username).exists()


def test_an_admin_invites_a_user_by_email_as_admin(api_client, org_setup):
    org, outsider = org_setup["org"], org_setup["outsider"]
    api_client.force_login(org_setup["admin"])

    response = api_client.post(
        members_url(org.id), {"email": outsider.email.upper(), "role": "admin"}, format="json"
    )

    assert response.status_code == 201
    assert (response.json()["role"], response.json()["status"]) == ("admin", "invited")
    membership = OrganizationMember.objects.get(org=org, user=outsider)
    assert (membership.role, membership.status) == ("admin", "invited")


def test_a_system_admin_invites_members_to_any_org(api_client, org_setup, staff_user):
    api_client.force_login(staff_user)

    response = api_client.post(
        members_url(org_setup["org"].id), {"user_id": org_setup["outsider"].username}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["status"] == "invited"


def test_inviting_an_unknown_user_id_is_404(api_client, org_setup):
    org = org_setup["org"]
    api_client.force_login(org_setup["admin"])
    before = _state(org)

    assert_error(
        api_client.post(members_url(org.id), {"user_id": "nobody"}, format="json"), 404, "user_not_found"
    )
    assert _state(org) == before


def test_adding_a_member_twice_is_409(api_client, org_setup):
    org = org_setup["org"]
    api_client.force_login(org_setup["admin"])
    before = _state(org)

    response = api_client.post(members_url(org.id), {"user_id": org_setup["member"].username}, format="json")

    assert_error(response, 409, "already_member")
    assert _state(org) == before


def test_an_email_shared_by_two_users_waits_for_a_verified_sign_in(api_client, org_setup):
    org = org_setup["org"]
    UserFactory(username="twin-a", email="twin@example.test")
    UserFactory(username="twin-b", email="TWIN@example.test")
    api_client.force_login(org_setup["admin"])
    before = _state(org)

    response = api_client.post(members_url(org.id), {"email": "twin@example.test"}, format="json")

    assert response.status_code == 201
    assert (response.json()["email"], response.json()["user_id"]) == ("twin@example.test", None)
    assert _state(org)[1] == before[1]  # no membership for either account yet


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"role": "admin"},
        {"user_id": "outsider", "email": "outsider@example.test"},
        {"user_id": 5},
        {"user_id": True},
        {"user_id": None},
        {"user_id": ""},
        {"user_id": ["outsider"]},
        {"user_id": "x" * 151},
        {"email": "not-an-email"},
        {"email": 12},
        {"user_id": "outsider", "role": "owner"},
        {"user_id": "outsider", "role": 1},
        {"user_id": "outsider", "status": "suspended"},
        {"user_id": "outsider", "status": 1},
        {"user_id": "outsider", "amount": "NaN"},
        ["outsider"],
        "outsider",
    ],
)
def test_bad_add_member_bodies_are_400(api_client, org_setup, body):
    org = org_setup["org"]
    api_client.force_login(org_setup["admin"])
    before = _state(org)

    assert_error(api_client.post(members_url(org.id), body, format="json"), 400, "validation_error")
    assert _state(org) == before


@pytest.mark.parametrize("raw", ["{bad", '{"user_id": NaN}', "Infinity"])
def test_malformed_json_when_adding_is_400(api_client, org_setup, raw):
    org = org_setup["org"]
    api_client.force_login(org_setup["admin"])
    before = _state(org)

    response = api_client.generic("POST", members_url(org.id), raw, content_type="application/json")

    assert_error(response, 400, "malformed_request")
    assert _state(org) == before


@pytest.mark.parametrize(("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, None)])
def test_only_admins_add_members(api_client, org_setup, who, status, code):
    org = org_setup["org"]
    api_client.force_login(org_setup[who])
    before = _state(org)

    response = api_client.post(members_url(org.id), {"user_id": "other-member"}, format="json")

    assert_error(response, status, code or "organization_not_found")
    assert _state(org) == before


def test_adding_needs_a_signed_in_user(api_client, org_setup):
    response = api_client.post(members_url(org_setup["org"].id), {"user_id": "outsider"}, format="json")

    assert_error(response, 401, "unauthenticated")


def test_adding_to_another_orgs_id_is_404(api_client, org_setup):
    api_client.force_login(org_setup["admin"])
    before = _state(org_setup["other_org"])

    response = api_client.post(members_url("other-org"), {"user_id": "outsider"}, format="json")

    assert_error(response, 404, "organization_not_found")
    assert _state(org_setup["other_org"]) == before


# PATCH member ------------------------------------------------------------------------------


def test_an_admin_promotes_a_member(api_client, org_setup):
    org, member = org_setup["org"], org_setup["member"]
    api_client.force_login(org_setup["admin"])

    response = api_client.patch(member_url(org.id, member.username), {"role": "admin"}, format="json")

    assert response.status_code == 200
    assert (response.json()["user_id"], response.json()["role"]) == (member.username, "admin")
    assert AuditEvent.objects.filter(action="member.role_changed", target_id=member.username).exists()


def test_an_admin_suspends_and_reactivates_a_member_who_then_bills_again(api_client, org_setup):
    org, member = org_setup["org"], org_setup["member"]
    api_client.force_login(org_setup["admin"])

    suspended = api_client.patch(member_url(org.id, member.username), {"status": "suspended"}, format="json")

    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    assert UserCreditAllocation.objects.get(pk=org_setup["allocation"].pk).is_active  # kept
    with pytest.raises(NotAMember):
        deduct_credits(user=member, org_id=org.id, amount=mc(1), request_id="suspended-call")

    reactivated = api_client.patch(member_url(org.id, member.username), {"status": "active"}, format="json")

    assert reactivated.json()["status"] == "active"
    assert deduct_credits(user=member, org_id=org.id, amount=mc(1), request_id="after").success


def test_role_and_status_change_together(api_client, org_setup):
    org, member = org_setup["org"], org_setup["member"]
    api_client.force_login(org_setup["admin"])

    response = api_client.patch(
        member_url(org.id, member.username), {"role": "admin", "status": "suspended"}, format="json"
    )

    assert (response.json()["role"], response.json()["status"]) == ("admin", "suspended")


@pytest.mark.parametrize("body", [{"role": "member"}, {"status": "suspended"}])
def test_demoting_or_suspending_the_last_admin_is_409(api_client, org_setup, body):
    org, admin = org_setup["org"], org_setup["admin"]
    api_client.force_login(admin)
    before = _state(org)

    response = api_client.patch(member_url(org.id, admin.username), body, format="json")

    assert_error(response, 409, "last_admin")
    assert _state(org) == before


def test_an_admin_steps_down_once_another_admin_exists(api_client, org_setup):
    org, admin, member = org_setup["org"], org_setup["admin"], org_setup["member"]
    api_client.force_login(admin)
    api_client.patch(member_url(org.id, member.username), {"role": "admin"}, format="json")

    response = api_client.patch(member_url(org.id, admin.username), {"role": "member"}, format="json")

    assert response.status_code == 200 and response.json()["role"] == "member"
    # No longer an admin: further changes are forbidden.
    assert_error(
        api_client.patch(member_url(org.id, member.username), {"role": "member"}, format="json"),
        403,
        "forbidden",
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "invited"},
        {"status": "removed"},
        {"role": "owner"},
        {"role": None},
        {"status": True},
        {"role": "admin", "is_default": True},
        ["admin"],
    ],
)
def test_bad_member_update_bodies_are_400(api_client, org_setup, body):
    org = org_setup["org"]
    api_client.force_login(org_setup["admin"])
    before = _state(org)

    response = api_client.patch(member_url(org.id, org_setup["member"].username), body, format="json")

    assert_error(response, 400, "validation_error")
    assert _state(org) == before


def test_malformed_json_when_updating_is_400(api_client, org_setup):
    org = org_setup["org"]
    api_client.force_login(org_setup["admin"])

    response = api_client.generic(
        "PATCH", member_url(org.id, org_setup["member"].username), "{bad", content_type="application/json"
    )

    assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize(
    ("user_id", "code"), [("nobody", "user_not_found"), ("outsider", "member_not_found")]
)
def test_updating_an_unknown_user_or_non_member_is_404(api_client, org_setup, user_id, code):
    org = org_setup["org"]
    api_client.force_login(org_setup["admin"])
    before = _state(org)

    assert_error(api_client.patch(member_url(org.id, user_id), {"role": "admin"}, format="json"), 404, code)
    assert _state(org) == before


def test_another_orgs_member_is_not_reachable_through_my_org(api_client, org_setup):
    org = org_setup["org"]
    api_client.force_login(org_setup["admin"])
    before = _state(org_setup["other_org"])

    response = api_client.patch(member_url(org.id, "other-member"), {"status": "suspended"}, format="json")

    assert_error(response, 404, "member_not_found")
    assert _state(org_setup["other_org"]) == before


@pytest.mark.parametrize(("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, None)])
def test_only_admins_change_members(api_client, org_setup, who, status, code):
    org = org_setup["org"]
    api_client.force_login(org_setup[who])
    before = _state(org)

    response = api_client.patch(
        member_url(org.id, org_setup["member"].username), {"role": "admin"}, format="json"
    )

    assert_error(response, status, code or "organization_not_found")
    assert _state(org) == before


def test_a_system_admin_changes_members_of_any_org(api_client, org_setup, staff_user):
    api_client.force_login(staff_user)

    response = api_client.patch(
        member_url("other-org", "other-member"), {"status": "suspended"}, format="json"
    )

    assert response.status_code == 200 and response.json()["status"] == "suspended"


def test_updating_needs_a_signed_in_user(api_client, org_setup):
    response = api_client.patch(
        member_url(org_setup["org"].id, "org-admin"), {"role": "member"}, format="json"
    )

    assert_error(response, 401, "unauthenticated")


# DELETE member -----------------------------------------------------------------------------


def test_removing_a_member_returns_unused_credits_to_the_pool(api_client, org_setup):
    org, member = org_setup["org"], org_setup["member"]
    deduct_credits(user=member, org_id=org.id, amount=mc("25.25"), request_id="used-before")
    api_client.force_login(org_setup["admin"])

    response = api_client.delete(member_url(org.id, member.username))

    assert response.status_code == 200
    assert response.json() == {
        "removed": True,
        "org_id": org.id,
        "user_id": member.username,
        "returned_to_pool": 74.75,
    }
    assert not OrganizationMember.objects.filter(org=org, user=member).exists()
    assert not UserCreditAllocation.objects.get(pk=org_setup["allocation"].pk).is_active
    pool = OrganizationCreditPool.objects.get(org=org)
    assert pool.available_credits == mc("974.75")
    event = AuditEvent.objects.get(action="member.removed", target_id=member.username)
    assert event.actor == org_setup["admin"]


def test_removing_a_member_without_allocation_returns_zero(api_client, org_setup):
    org, outsider = org_setup["org"], org_setup["outsider"]
    add_member(org_id=org.id, user=outsider)
    api_client.force_login(org_setup["admin"])

    response = api_client.delete(member_url(org.id, outsider.username))

    assert response.status_code == 200
    assert response.json()["returned_to_pool"] == 0


def test_removing_a_member_with_calls_in_flight_is_409_and_changes_nothing(api_client, org_setup):
    org, member = org_setup["org"], org_setup["member"]
    reserve_credits(user=member, org_id=org.id, amount=mc(3), request_id="in-flight")
    api_client.force_login(org_setup["admin"])
    before = _state(org)

    response = api_client.delete(member_url(org.id, member.username))

    assert_error(response, 409, "allocation_has_active_holds")
    assert _state(org) == before


def test_removing_the_last_admin_is_409(api_client, org_setup):
    org, admin = org_setup["org"], org_setup["admin"]
    api_client.force_login(admin)
    before = _state(org)

    assert_error(api_client.delete(member_url(org.id, admin.username)), 409, "last_admin")
    assert _state(org) == before


@pytest.mark.parametrize(
    ("user_id", "code"), [("nobody", "user_not_found"), ("outsider", "member_not_found")]
)
def test_removing_an_unknown_user_or_non_member_is_404(api_client, org_setup, user_id, code):
    org = org_setup["org"]
    api_client.force_login(org_setup["admin"])
    before = _state(org)

    assert_error(api_client.delete(member_url(org.id, user_id)), 404, code)
    assert _state(org) == before


@pytest.mark.parametrize(("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, None)])
def test_only_admins_remove_members(api_client, org_setup, who, status, code):
    org = org_setup["org"]
    api_client.force_login(org_setup[who])
    before = _state(org)

    response = api_client.delete(member_url(org.id, org_setup["member"].username))

    assert_error(response, status, code or "organization_not_found")
    assert _state(org) == before


def test_another_orgs_admin_cannot_remove_my_members(api_client, org_setup):
    org = org_setup["org"]
    api_client.force_login(org_setup["other_admin"])
    before = _state(org)

    assert_error(
        api_client.delete(member_url(org.id, org_setup["member"].username)), 404, "organization_not_found"
    )
    assert _state(org) == before


def test_a_system_admin_removes_members_of_any_org(api_client, org_setup, staff_user):
    api_client.force_login(staff_user)

    response = api_client.delete(member_url(org_setup["org"].id, org_setup["member"].username))

    assert response.status_code == 200
    assert response.json()["returned_to_pool"] == 100


def test_removing_needs_a_signed_in_user(api_client, org_setup):
    before = _state(org_setup["org"])

    response = api_client.delete(member_url(org_setup["org"].id, org_setup["member"].username))

    assert_error(response, 401, "unauthenticated")
    assert _state(org_setup["org"]) == before


def test_a_removed_member_loses_access_to_the_org(api_client, org_setup):
    org, member = org_setup["org"], org_setup["member"]
    api_client.force_login(org_setup["admin"])
    api_client.delete(member_url(org.id, member.username))
    api_client.force_login(member)

    body = api_client.get("/api/v1/me").json()

    assert org.id not in [o["org_id"] for o in body["organizations"]]
    assert_error(api_client.get(members_url(org.id)), 404, "organization_not_found")


# cross-org isolation -----------------------------------------------------------------------


def test_an_org_admin_gets_404_for_every_member_endpoint_of_another_org(api_client, org_setup):
    api_client.force_login(org_setup["admin"])
    other = org_setup["other_org"].id
    before = _state(org_setup["other_org"])

    responses = [
        api_client.get(members_url(other)),
        api_client.post(members_url(other), {"user_id": "outsider"}, format="json"),
        api_client.patch(member_url(other, "other-member"), {"role": "admin"}, format="json"),
        api_client.delete(member_url(other, "other-member")),
    ]

    for response in responses:
        assert_error(response, 404, "organization_not_found")
    assert _state(org_setup["other_org"]) == before


def test_my_member_list_never_contains_another_orgs_rows(api_client, org_setup):
    api_client.force_login(org_setup["admin"])

    body = api_client.get(members_url(org_setup["org"].id), {"page_size": 500}).json()

    user_ids = {r["user_id"] for r in body["results"]}
    assert "other-member" not in user_ids and "other-admin" not in user_ids
    assert "secret@other.test" not in str(body)
