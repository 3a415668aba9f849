"""Dashboards: ``GET /billing/user``, ``GET /billing/org/{org_id}``, ``GET /billing/system``."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.services import (
    add_credits_to_pool,
    add_individual_credits,
    allocate_credits_to_user,
    create_department,
)
from billing.services.subscriptions import create_subscription
from organizations.services import add_member
from tests.billing.test_selectors import charge
from tests.factories import UserFactory
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.django_db

USER_URL = reverse("org-billing-user-dashboard")
SYSTEM_URL = reverse("org-billing-system-dashboard")


def org_url(org_id: str) -> str:
    return reverse("org-billing-org-dashboard", args=[org_id])


@pytest.fixture
def team(team, make_funded_member):
    """The billing ``team`` (a member holding 100 of 1,000 credits, an admin); another org with
    its own."""
    team.other_org, team.other_member, _ = make_funded_member(pool=300, allocation=30)
    return team


# --- GET /billing/user ---------------------------------------------------------------------


def test_user_dashboard_lists_every_org_with_allocation_and_individual_credits(api_client, team):
    add_member(org_id=team.other_org.id, user=team.member, is_default=True)
    allocate_credits_to_user(org_id=team.other_org.id, user=team.member, amount=mc(20))
    charge(team.member, team.org, "12.5")
    add_individual_credits(user=team.member, amount=mc(5))
    api_client.force_login(team.member)

    response = api_client.get(USER_URL)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user_id"] == team.member.username
    assert body["default_org_id"] == team.other_org.id
    orgs = {row["org_id"]: row for row in body["organizations"]}
    assert orgs[team.org.id] == {
        "org_id": team.org.id,
        "org_name": team.org.org_name,
        "org_is_active": True,
        "role": "member",
        "is_default": False,
        "allocated_credits": 100.0,
        "used_credits": 12.5,
        "reserved_credits": 0.0,
        "remaining_credits": 87.5,
        "allocation_expires_at": None,
        "allocation_expired": False,
    }
    assert orgs[team.other_org.id]["is_default"] is True
    assert body["individual_credits"] == {"total": 5.0, "used": 0.0, "reserved": 0.0, "remaining": 5.0}
    assert body["totals"]["remaining_credits"] == 107.5
    assert body["totals"]["total_remaining_credits"] == 112.5


def test_user_dashboard_never_shows_orgs_the_user_is_not_in(api_client, team):
    api_client.force_login(team.admin)
    body = api_client.get(USER_URL).json()
    assert [row["org_id"] for row in body["organizations"]] == [team.org.id]
    assert body["organizations"][0]["role"] == "admin"


def test_user_dashboard_needs_a_signed_in_user(api_client):
    assert_error(api_client.get(USER_URL), 401, "unauthenticated")


# --- GET /billing/org/{org_id} -------------------------------------------------------------


def test_org_dashboard_for_an_admin(api_client, team):
    create_subscription(org_id=team.org.id, plan_code="starter", owner=team.admin)
    charge(team.member, team.org, 25, model="gpt-4o")
    charge(team.member, team.org, 5, model="claude", at=timezone.now() - timedelta(days=2))
    charge(team.other_member, team.other_org, 3)
    api_client.force_login(team.admin)

    response = api_client.get(org_url(team.org.id))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["pool"] == {
        "total_credits": 1000.0,
        "allocated_credits": 100.0,
        "used_credits": 30.0,
        "available_credits": 900.0,
        "percent_allocated": 10.0,
        "percent_used": 3.0,
    }
    assert body["member_count"] == 2
    members = {m["user_id"]: m for m in body["members"]}
    assert set(members) == {team.member.username, team.admin.username}
    assert members[team.member.username]["percent_used"] == 30.0
    assert members[team.member.username]["remaining_credits"] == 70.0
    assert members[team.admin.username]["has_allocation"] is False
    assert [u["user_id"] for u in body["top_users"]] == [team.member.username]
    assert [m["model"] for m in body["usage_by_model"]] == ["gpt-4o", "claude"]
    assert len(body["daily_usage"]) == 30
    assert [d["credits_used"] for d in body["daily_usage"][-3:]] == [5.0, 0.0, 25.0]
    assert body["usage"]["credits_used"] == 30.0
    assert body["subscription"]["plan_code"] == "starter"
    assert body["subscription"]["monthly_price"] == 19.0
    assert body["recent_history"][0]["event_type"] == "subscription_change"
    assert {h["external_id"] for h in body["recent_history"]}.isdisjoint(
        set(team.other_org.billing_history.values_list("external_id", flat=True))
    )


def test_org_dashboard_for_a_system_admin(api_client, staff_user, team):
    api_client.force_login(staff_user)
    response = api_client.get(org_url(team.org.id))
    assert response.status_code == 200
    assert response.json()["subscription"] is None


def test_org_dashboard_refusals(api_client, team):
    before = snapshot_balances()
    assert_error(api_client.get(org_url(team.org.id)), 401, "unauthenticated")
    api_client.force_login(team.member)
    assert_error(api_client.get(org_url(team.org.id)), 403, "forbidden")
    api_client.force_login(team.other_member)
    assert_error(api_client.get(org_url(team.org.id)), 404, "organization_not_found")
    api_client.force_login(team.admin)
    assert_error(api_client.get(org_url(team.other_org.id)), 404, "organization_not_found")
    assert_error(api_client.get(org_url("no-such-org")), 404, "organization_not_found")
    assert snapshot_balances() == before


def test_org_dashboard_query_count_does_not_grow_with_members(
    api_client, team, django_assert_max_num_queries
):
    api_client.force_login(team.admin)
    charge(team.member, team.org, 1)
    create_department(org_id=team.org.id, name="D", budget=mc(1), managers=[team.admin])
    with CaptureQueriesContext(connection) as baseline:
        assert api_client.get(org_url(team.org.id)).status_code == 200
    # session, user, org access, then the dashboard's thirteen queries (the usage window's
    # rollup markers, then ten, then the departments and their managers) in the report's own
    # transaction (orgbilling.db.report_timeout: a savepoint and its release under the test's)
    assert len(baseline.captured_queries) <= 18, [q["sql"][:80] for q in baseline.captured_queries]

    for n in range(15):
        user = UserFactory()
        add_member(org_id=team.org.id, user=user)
        allocate_credits_to_user(org_id=team.org.id, user=user, amount=mc(10))
        create_department(org_id=team.org.id, name=f"D{n}", budget=mc(1), managers=[user])
        charge(user, team.org, "0.5", model=f"model-{n % 4}")
    api_client.force_login(team.admin)  # a fresh session, as for the baseline

    with django_assert_max_num_queries(len(baseline.captured_queries)):
        response = api_client.get(org_url(team.org.id))

    assert response.json()["member_count"] == 17
    assert len(response.json()["members"]) == 17
    assert len(response.json()["usage_by_model"]) == 5  # four models and the first charge's


# --- GET /billing/system -------------------------------------------------------------------


def test_system_dashboard_for_a_system_admin(api_client, staff_user, team):
    add_credits_to_pool(org_id=team.org.id, amount=mc(5000), purchase_amount=Decimal("50.00"))
    allocate_credits_to_user(org_id=team.other_org.id, user=team.other_member, amount=mc(250))
    charge(team.member, team.org, 4)
    charge(team.other_member, team.other_org, 2)
    api_client.force_login(staff_user)

    response = api_client.get(SYSTEM_URL)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["totals"]["organizations"] == 2
    assert body["totals"]["active_members"] == 3
    assert body["totals"]["pool_total_credits"] == 6300.0
    assert body["totals"]["credits_used_last_30_days"] == 6.0
    assert [o["org_id"] for o in body["top_orgs"]] == [team.org.id, team.other_org.id]
    assert body["revenue"]["total_all_time"] == 50.0
    assert body["revenue"]["total_last_30_days"] == 50.0
    purchase = next(line for line in body["revenue"]["all_time"] if line["event_type"] == "credit_purchase")
    assert (purchase["amount"], purchase["credits"], purchase["count"]) == (50.0, 5000.0, 1)
    assert body["near_exhaustion_count"] == 1
    assert body["orgs_near_exhaustion"][0]["org_id"] == team.other_org.id
    assert body["orgs_near_exhaustion"][0]["percent_available"] == 6.7


def test_system_dashboard_is_for_system_admins_only(api_client, team):
    before = snapshot_balances()
    assert_error(api_client.get(SYSTEM_URL), 401, "unauthenticated")
    for user in (team.admin, team.member):
        api_client.force_login(user)
        assert_error(api_client.get(SYSTEM_URL), 403, "forbidden")
    assert snapshot_balances() == before


def test_dashboards_answer_get_only(api_client, staff_user, team):
    api_client.force_login(staff_user)
    for url in (USER_URL, SYSTEM_URL, org_url(team.org.id)):
        assert_error(api_client.post(url, {}, format="json"), 405, "method_not_allowed")
