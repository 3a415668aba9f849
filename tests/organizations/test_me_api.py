"""GET /api/v1/me and PUT /api/v1/me/default-org."""

import pytest

from billing.models import AuditEvent
from billing.services import resolve_billing_context
from organizations.models import Organization, OrganizationMember
from organizations.services import add_member, set_default_organization, set_organization_active
from orgbilling.errors import ApplicationError
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error, snapshot_balances

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"
DEFAULT_ORG = "/api/v1/me/default-org"


def _defaults(user) -> list[str]:
    return list(
        OrganizationMember.objects.filter(user=user, is_default=True).values_list("org_id", flat=True)
    )


# GET /me -----------------------------------------------------------------------------------


def test_me_shows_profile_memberships_with_roles_and_the_default_org(api_client):
    user = UserFactory(username="kc-sub-1", email="ada@example.test", first_name="Ada", last_name="Lovelace")
    acme = OrganizationFactory(id="acme", org_name="Acme", created_by=user)  # first org: default
    side = OrganizationFactory(id="side", org_name="Side")
    add_member(org_id=side.id, user=user)
    OrganizationMember.objects.filter(org=side, user=user).update(status="suspended")
    api_client.force_login(user)

    response = api_client.get(ME)

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {
        "user_id": "kc-sub-1",
        "email": "ada@example.test",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "is_system_admin": False,
    }
    orgs = {o["org_id"]: o for o in body["organizations"]}
    assert set(orgs) == {"acme", "side"}
    assert orgs["acme"]["org_name"] == "Acme"
    assert (orgs["acme"]["role"], orgs["acme"]["status"], orgs["acme"]["is_default"]) == (
        "admin",
        "active",
        True,
    )
    assert (orgs["side"]["role"], orgs["side"]["status"], orgs["side"]["is_default"]) == (
        "member",
        "suspended",
        False,
    )
    assert orgs["acme"]["org_is_active"] is True
    assert orgs["acme"]["joined_at"]
    assert body["default_org_id"] == acme.id
    assert body["billing_context"] == {
        "org_id": acme.id,
        "source": "default",
        "can_bill": True,
        "refusal_code": None,
    }


def test_me_without_organizations_bills_individual_credits(api_client):
    user = UserFactory()
    api_client.force_login(user)

    body = api_client.get(ME).json()

    assert body["organizations"] == []
    assert body["default_org_id"] is None
    assert body["billing_context"] == {
        "org_id": None,
        "source": "individual",
        "can_bill": True,
        "refusal_code": None,
    }


def _expected_context(user) -> dict:
    """What billing itself decides for a request that names no org."""
    try:
        context = resolve_billing_context(user=user)
    except ApplicationError as refusal:
        return {"org_id": refusal.details["org_id"], "can_bill": False, "refusal_code": refusal.code}
    return {"org_id": context.org_id, "can_bill": True, "refusal_code": None}


@pytest.mark.parametrize("broken", ["deactivated_org", "suspended_membership"])
def test_me_loads_and_agrees_with_billing_when_the_default_org_is_unusable(api_client, broken):
    user = UserFactory()
    old = OrganizationFactory(created_by=user)  # the default
    new = OrganizationFactory()
    add_member(org_id=new.id, user=user)
    if broken == "deactivated_org":
        Organization.objects.filter(pk=old.pk).update(is_active=False)
    else:
        OrganizationMember.objects.filter(org=old, user=user).update(status="suspended")
    api_client.force_login(user)

    response = api_client.get(ME)

    assert response.status_code == 200
    body = response.json()
    expected = _expected_context(user)
    context = body["billing_context"]
    assert {k: context[k] for k in expected} == expected
    assert body["default_org_id"] == expected["org_id"]
    orgs = {o["org_id"]: o for o in body["organizations"]}
    assert (orgs[old.id]["org_is_active"], orgs[old.id]["status"]) == (
        (False, "active") if broken == "deactivated_org" else (True, "suspended")
    )


def test_me_reports_a_billing_refusal_instead_of_failing(api_client):
    user = UserFactory()
    org = OrganizationFactory(created_by=user)
    set_organization_active(org_id=org.id, is_active=False, actor=UserFactory(is_staff=True))
    api_client.force_login(user)

    response = api_client.get(ME)

    assert response.status_code == 200
    assert response.json()["default_org_id"] == org.id
    assert response.json()["billing_context"] == {
        "org_id": org.id,
        "source": "default",
        "can_bill": False,
        "refusal_code": "organization_inactive",
    }


def test_me_marks_a_system_admin(api_client, staff_user):
    api_client.force_login(staff_user)

    body = api_client.get(ME).json()

    assert body["user"]["is_system_admin"] is True
    assert body["organizations"] == []


def test_me_never_lists_other_users_memberships(api_client):
    user, other = UserFactory(), UserFactory()
    OrganizationFactory(created_by=other)
    mine = OrganizationFactory(created_by=user)
    api_client.force_login(user)

    body = api_client.get(ME).json()

    assert [o["org_id"] for o in body["organizations"]] == [mine.id]


def test_me_needs_a_signed_in_user(api_client):
    assert_error(api_client.get(ME), 401, "unauthenticated")
    assert_error(api_client.put(DEFAULT_ORG, {"org_id": "x"}, format="json"), 401, "unauthenticated")


def test_me_is_read_only(api_client):
    api_client.force_login(UserFactory())

    assert_error(api_client.post(ME, {}, format="json"), 405, "method_not_allowed")


# PUT /me/default-org -----------------------------------------------------------------------


def test_choosing_the_default_org_answers_the_updated_profile(api_client):
    user = UserFactory()
    first = OrganizationFactory(created_by=user)
    second = OrganizationFactory()
    add_member(org_id=second.id, user=user)
    api_client.force_login(user)

    response = api_client.put(DEFAULT_ORG, {"org_id": second.id}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["default_org_id"] == second.id
    assert body["billing_context"]["org_id"] == second.id
    assert body["billing_context"]["source"] == "default"
    assert {o["org_id"]: o["is_default"] for o in body["organizations"]} == {first.id: False, second.id: True}
    assert _defaults(user) == [second.id]
    event = AuditEvent.objects.filter(action="member.default_org_set").latest("pk")
    assert (event.actor, event.org_id) == (user, second.id)


def test_choosing_the_current_default_again_is_fine(api_client):
    user = UserFactory()
    org = OrganizationFactory(created_by=user)
    api_client.force_login(user)

    response = api_client.put(DEFAULT_ORG, {"org_id": org.id}, format="json")

    assert response.status_code == 200
    assert _defaults(user) == [org.id]


@pytest.mark.parametrize("case", ["not_a_member", "suspended", "unknown", "other_users_org"])
def test_the_default_org_must_be_an_active_membership(api_client, case):
    user = UserFactory()
    mine = OrganizationFactory(created_by=user)
    target = OrganizationFactory()
    if case == "suspended":
        add_member(org_id=target.id, user=user)
        OrganizationMember.objects.filter(org=target, user=user).update(status="suspended")
        set_default_organization(user=user, org_id=mine.id)
    if case == "other_users_org":
        OrganizationMember.objects.create(org=target, user=UserFactory(), role="admin")
    org_id = "no-such-org" if case == "unknown" else target.id
    api_client.force_login(user)
    before = snapshot_balances()

    response = api_client.put(DEFAULT_ORG, {"org_id": org_id}, format="json")

    assert_error(response, 404, "organization_not_found")
    assert snapshot_balances() == before
    assert _defaults(user) == [mine.id]


def test_a_staff_user_cannot_default_to_an_org_they_do_not_belong_to(api_client, staff_user):
    org = OrganizationFactory()
    api_client.force_login(staff_user)

    assert_error(
        api_client.put(DEFAULT_ORG, {"org_id": org.id}, format="json"), 404, "organization_not_found"
    )


def test_a_deactivated_org_cannot_become_the_default(api_client):
    user = UserFactory()
    mine = OrganizationFactory(created_by=user)
    inactive = OrganizationFactory()
    add_member(org_id=inactive.id, user=user)
    Organization.objects.filter(pk=inactive.pk).update(is_active=False)
    api_client.force_login(user)
    before = snapshot_balances()

    response = api_client.put(DEFAULT_ORG, {"org_id": inactive.id}, format="json")

    assert_error(response, 403, "organization_inactive")
    assert snapshot_balances() == before
    assert _defaults(user) == [mine.id]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"org_id": 5},
        {"org_id": None},
        {"org_id": ""},
        {"org_id": ["a"]},
        {"org_id": "x" * 65},
        {"org_id": "acme", "extra": 1},
        ["acme"],
    ],
)
def test_bad_default_org_bodies_are_400(api_client, body):
    user = UserFactory()
    OrganizationFactory(id="acme", created_by=user)
    api_client.force_login(user)
    before = snapshot_balances()

    assert_error(api_client.put(DEFAULT_ORG, body, format="json"), 400, "validation_error")
    assert snapshot_balances() == before


@pytest.mark.parametrize("raw", ["{bad", "NaN", '{"org_id": NaN}'])
def test_malformed_json_for_the_default_org_is_400(api_client, raw):
    api_client.force_login(UserFactory())

    response = api_client.generic("PUT", DEFAULT_ORG, raw, content_type="application/json")

    assert_error(response, 400, "malformed_request")


def test_default_org_is_put_only(api_client):
    api_client.force_login(UserFactory())

    assert_error(api_client.post(DEFAULT_ORG, {"org_id": "x"}, format="json"), 405, "method_not_allowed")


def test_unsafe_requests_need_the_csrf_token_with_a_session():
    from rest_framework.test import APIClient

    user = UserFactory()
    org = OrganizationFactory(created_by=user)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)

    assert_error(client.put(DEFAULT_ORG, {"org_id": org.id}, format="json"), 403, "forbidden")
