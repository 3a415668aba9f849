"""Isolation: an admin of org A gets 404 for every endpoint of org B, and no list or dashboard
of theirs ever contains org B's rows."""

import json

import pytest

from billing.services import deduct_credits
from billing.services.subscriptions import create_subscription
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.django_db

BASE = "/api/v1/org-billing"


@pytest.fixture
def two_orgs(make_funded_member):
    admin_a, admin_b = UserFactory(username="admin-a"), UserFactory(username="admin-b")
    org_a = OrganizationFactory(id="org-a", created_by=admin_a)
    org_b = OrganizationFactory(id="org-b", created_by=admin_b)
    _, member_a, _ = make_funded_member(pool=500, allocation=50, org=org_a)
    _, member_b, _ = make_funded_member(pool=500, allocation=50, org=org_b)
    create_subscription(org_id="org-a", plan_code="starter", owner=admin_a)
    create_subscription(org_id="org-b", plan_code="starter", owner=admin_b)
    deduct_credits(user=member_a, org_id="org-a", amount=mc(1), request_id="a-1", service_name="model-a")
    deduct_credits(user=member_b, org_id="org-b", amount=mc(2), request_id="b-1", service_name="model-b")
    return admin_a, member_a, member_b


def org_b_endpoints(member_b_id: str):
    u = member_b_id
    return [
        ("get", f"{BASE}/subscriptions/org-b", None),
        ("put", f"{BASE}/subscriptions/org-b/upgrade", {"plan_code": "professional"}),
        ("post", f"{BASE}/subscriptions/org-b/cancel", {}),
        ("get", f"{BASE}/credits/org-b", None),
        ("post", f"{BASE}/credits/org-b/add", {"credits": 10}),
        ("post", f"{BASE}/credits/org-b/allocate", {"user_id": u, "credits": 1}),
        ("get", f"{BASE}/credits/org-b/allocations", None),
        ("get", f"{BASE}/credits/org-b/usage", None),
        ("patch", f"{BASE}/credits/org-b/allocations/{u}", {"credits": 1}),
        ("delete", f"{BASE}/credits/org-b/allocations/{u}", None),
        (
            "post",
            f"{BASE}/credits/org-b/transfer",
            {"from_user_id": u, "to_user_id": "admin-b", "credits": 1},
        ),
        ("get", f"{BASE}/credits/org-b/requests", None),
        ("post", f"{BASE}/credits/org-b/requests", {"credits": 5, "reason": "x"}),
        ("post", f"{BASE}/credits/org-b/requests/1/approve", {}),
        ("post", f"{BASE}/credits/org-b/requests/1/decline", {}),
        ("post", f"{BASE}/credits/org-b/requests/1/cancel", {}),
        ("get", f"{BASE}/billing/org/org-b", None),
        ("get", f"{BASE}/usage/org-b/by-user", None),
        ("get", f"{BASE}/usage/org-b/by-model", None),
        ("get", f"{BASE}/org-b/history", None),
        ("get", "/api/v1/organizations/org-b/members", None),
        ("post", "/api/v1/organizations/org-b/members", {"user_id": "admin-a", "role": "admin"}),
        ("patch", f"/api/v1/organizations/org-b/members/{u}", {"role": "admin"}),
        ("delete", f"/api/v1/organizations/org-b/members/{u}", None),
        ("put", "/api/v1/me/default-org", {"org_id": "org-b"}),
    ]


def test_admin_of_org_a_gets_404_for_every_org_b_endpoint(api_client, two_orgs):
    admin_a, _, member_b = two_orgs
    api_client.force_login(admin_a)
    before = snapshot_balances()
    for method, url, body in org_b_endpoints(member_b.username):
        response = (
            getattr(api_client, method)(url, body, format="json")
            if body is not None
            else getattr(api_client, method)(url)
        )
        assert response.status_code == 404, (method, url, response.status_code, response.content[:300])
        assert response.json()["error"]["code"] in {"organization_not_found", "not_found"}, (method, url)
    assert snapshot_balances() == before


def test_lists_and_dashboards_of_org_a_never_show_org_b(api_client, two_orgs):
    admin_a, _, member_b = two_orgs
    api_client.force_login(admin_a)
    urls = [
        f"{BASE}/credits/org-a/allocations",
        f"{BASE}/credits/org-a/usage",
        f"{BASE}/billing/user",
        f"{BASE}/billing/org/org-a",
        f"{BASE}/usage/org-a/by-user",
        f"{BASE}/usage/org-a/by-model",
        f"{BASE}/org-a/history",
        "/api/v1/organizations/org-a/members",
        "/api/v1/me",
    ]
    for url in urls:
        response = api_client.get(url)
        assert response.status_code == 200, (url, response.content[:300])
        text = json.dumps(response.json())
        for leak in ("org-b", member_b.username, "model-b", "admin-b"):
            assert leak not in text, (url, leak)


def test_the_system_dashboard_is_for_system_admins_only(api_client, two_orgs):
    admin_a, _, _ = two_orgs
    api_client.force_login(admin_a)
    assert_error(api_client.get(f"{BASE}/billing/system"), 403, "forbidden")


def test_subscribing_an_org_id_that_belongs_to_someone_else_is_refused(api_client, two_orgs):
    admin_a, _, _ = two_orgs
    api_client.force_login(admin_a)
    before = snapshot_balances()
    response = api_client.post(
        f"{BASE}/subscriptions", {"org_id": "org-b", "plan_code": "starter"}, format="json"
    )
    assert response.status_code in (404, 409)
    assert snapshot_balances() == before


def test_a_member_of_org_b_added_to_org_a_sees_only_what_org_a_shows_members(api_client, two_orgs):
    admin_a, _, member_b = two_orgs
    add_member(org_id="org-a", user=member_b)
    api_client.force_login(member_b)
    allocations = api_client.get(f"{BASE}/credits/org-a/allocations").json()["results"]
    assert allocations == []  # member_b has no allocation in org A, and sees no one else's
