"""Billing history: ``GET /{org_id}/history`` (org admins and system admins)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.services import add_credits_to_pool
from billing.services.subscriptions import create_subscription
from organizations.services import create_organization
from orgbilling.errors import ValidationFailed
from tests.billing.test_selectors import frozen_now
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.django_db


def history_url(org_id: str) -> str:
    return reverse("org-billing-history", args=[org_id])


@pytest.fixture
def team(team, make_funded_member):
    """The billing ``team`` with a purchase, a grant and a subscription; another org with a grant
    of its own."""
    with frozen_now(timezone.now() - timedelta(days=1)):
        add_credits_to_pool(
            org_id=team.org.id,
            amount=mc("5000.5"),
            purchase_amount=Decimal("50.01"),
            external_id="purchase-1",
        )
    create_subscription(org_id=team.org.id, plan_code="professional", owner=team.admin)
    team.other_org, team.other_member, _ = make_funded_member(pool=300, allocation=30)
    return team


def test_an_admin_reads_the_history_newest_first(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.get(history_url(team.org.id))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3
    assert [e["event_type"] for e in body["results"]] == [
        "subscription_change",
        "credit_grant",
        "credit_purchase",
    ]
    occurred = [e["occurred_at"] for e in body["results"]]
    assert occurred == sorted(occurred, reverse=True)
    purchase = body["results"][2]
    assert purchase["external_id"] == "purchase-1"
    assert purchase["amount"] == 50.01
    assert purchase["credits"] == 5000.5
    assert purchase["currency"] == "USD"
    assert body["results"][0]["amount"] == 49.0
    assert body["results"][1]["amount"] is None


def test_history_filtered_by_event_type(api_client, team):
    api_client.force_login(team.admin)
    body = api_client.get(history_url(team.org.id), {"event_type": "credit_purchase"}).json()
    assert [e["external_id"] for e in body["results"]] == ["purchase-1"]


def test_history_is_paginated(api_client, team):
    api_client.force_login(team.admin)
    first = api_client.get(history_url(team.org.id), {"page_size": 2}).json()
    second = api_client.get(first["next"]).json()
    assert len(first["results"]) == 2 and len(second["results"]) == 1
    assert second["next"] is None


def test_a_system_admin_reads_any_orgs_history(api_client, staff_user, team):
    api_client.force_login(staff_user)
    body = api_client.get(history_url(team.other_org.id)).json()
    assert body["count"] == 1


def test_history_never_contains_another_orgs_rows(api_client, team):
    api_client.force_login(team.admin)
    external_ids = {e["external_id"] for e in api_client.get(history_url(team.org.id)).json()["results"]}
    other = set(team.other_org.billing_history.values_list("external_id", flat=True))
    assert other and external_ids.isdisjoint(other)


def test_history_refusals(api_client, team):
    before = snapshot_balances()
    assert_error(api_client.get(history_url(team.org.id)), 401, "unauthenticated")
    api_client.force_login(team.member)
    assert_error(api_client.get(history_url(team.org.id)), 403, "forbidden")
    api_client.force_login(team.other_member)
    assert_error(api_client.get(history_url(team.org.id)), 404, "organization_not_found")
    api_client.force_login(team.admin)
    assert_error(api_client.get(history_url(team.other_org.id)), 404, "organization_not_found")
    assert_error(api_client.get(history_url("no-such-org")), 404, "organization_not_found")
    assert snapshot_balances() == before


@pytest.mark.parametrize("event_type", ["bogus", "INVOICE", "credit_purchase\x00"])
def test_an_unknown_event_type_is_400(api_client, team, event_type):
    api_client.force_login(team.admin)
    error = assert_error(
        api_client.get(history_url(team.org.id), {"event_type": event_type}), 400, "validation_error"
    )
    assert "event_type" in error["details"]["fields"]


def test_a_page_past_the_end_is_404(api_client, team):
    api_client.force_login(team.admin)
    assert_error(api_client.get(history_url(team.org.id), {"page": 9}), 404, "not_found")


def test_the_history_route_does_not_shadow_the_other_routes(api_client, staff_user):
    # Route segments cannot be org ids (they would shadow /{org_id}/history); "history" can.
    for reserved in ("billing", "usage", "credits", "subscriptions"):
        with pytest.raises(ValidationFailed):
            create_organization(org_id=reserved, org_name=reserved, created_by=None)
    create_organization(org_id="history", org_name="history", created_by=None)
    api_client.force_login(staff_user)

    assert api_client.get(history_url("history")).json()["count"] == 0
    assert "organizations" in api_client.get(reverse("org-billing-user-dashboard")).json()
    assert "totals" in api_client.get(reverse("org-billing-system-dashboard")).json()
    assert "pool" in api_client.get(reverse("org-billing-org-dashboard", args=["history"])).json()
    assert (
        "total_credits_used" in api_client.get(reverse("org-billing-credits-usage", args=["history"])).json()
    )
    # The more specific route wins: /credits/history is the pool of org "history".
    assert (
        api_client.get("/api/v1/org-billing/credits/history").resolver_match.url_name
        == "org-billing-credit-pool"
    )
