"""The reference developer guide's end-to-end journey, through HTTP, with its documented fields:
create subscription with initial credits → allocate to a member → a charge through the ledger →
usage statistics → billing history."""

import pytest

from billing.services import deduct_credits
from organizations.services import ensure_user
from tests.helpers import mc

pytestmark = pytest.mark.django_db

BASE = "/api/v1/org-billing"


def test_reference_journey(api_client, staff_user):
    member = ensure_user(username="e2e-user-123", email="e2e@test.com")
    api_client.force_login(staff_user)

    # 1. Create organization subscription
    response = api_client.post(
        f"{BASE}/subscriptions",
        {
            "org_id": "e2e-test-org",
            "plan_code": "professional",
            "org_name": "E2E Test Organization",
            "billing_email": "e2e@test.com",
            "initial_credits": 10000.0,
            "user_id": "e2e-user-123",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["subscription"]["org_id"] == "e2e-test-org"
    assert body["subscription"]["plan_code"] == "professional"
    assert body["credit_pool"]["total_credits"] == 10000.0
    org_id = body["subscription"]["org_id"]

    # 2. Allocate credits to the user
    response = api_client.post(
        f"{BASE}/credits/{org_id}/allocate", {"user_id": "e2e-user-123", "credits": 5000.0}, format="json"
    )
    assert response.status_code in (200, 201), response.content
    body = response.json()
    assert body["allocation"]["allocated_credits"] == 5000.0
    assert body["pool_updated"]["available_credits"] == 5000.0

    # 3. A metered call, charged through the ledger service (the gateway comes later)
    result = deduct_credits(
        user=member,
        org_id=org_id,
        amount=mc("0.05"),
        request_id="e2e-req-1",
        service_name="gpt-3.5-turbo",
        input_tokens=12,
        output_tokens=30,
    )
    assert result.remaining_credits == mc("4999.95")

    # 4. Usage statistics
    response = api_client.get(f"{BASE}/credits/{org_id}/usage")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["total_credits_used"] == 0.05
    assert body["total_requests"] == 1

    # The member sees the same charge as their own usage.
    api_client.force_login(member)
    mine = api_client.get(f"{BASE}/credits/{org_id}/usage").json()
    assert mine["total_credits_used"] == 0.05

    # 5. Billing history: the subscription and the initial credits
    api_client.force_login(staff_user)
    response = api_client.get(f"{BASE}/{org_id}/history")
    assert response.status_code == 200, response.content
    events = {row["event_type"] for row in response.json()["results"]}
    assert {"subscription_change", "credit_grant"} <= events
