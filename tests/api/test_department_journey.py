"""An enterprise's departments through HTTP: an admin creates two departments with managers, a
manager allocates inside their budget and is refused outside it, a member spends, usage by
department and the org dashboard answer."""

import csv
import io

import pytest

from billing.services import add_credits_to_pool, deduct_credits
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error, mc

pytestmark = pytest.mark.django_db

BASE = "/api/v1/org-billing"


def test_department_journey(api_client):
    # given: an organization with 1,000 credits, an admin, two managers-to-be and two engineers
    org = OrganizationFactory()
    add_credits_to_pool(org_id=org.id, amount=mc(1000), actor_label="test")
    admin, eng_lead, sales_lead, alice, bob = (UserFactory() for _ in range(5))
    add_member(org_id=org.id, user=admin, role="admin")
    for user in (eng_lead, sales_lead, alice, bob):
        add_member(org_id=org.id, user=user)

    # 1. The admin creates Engineering (400) and Sales (300); the pool has 300 left
    api_client.force_login(admin)
    eng = api_client.post(
        f"{BASE}/credits/{org.id}/departments",
        {"name": "Engineering", "budget_credits": 400, "managers": [eng_lead.username]},
        format="json",
    )
    sales = api_client.post(
        f"{BASE}/credits/{org.id}/departments",
        {"name": "Sales", "budget_credits": 300, "managers": [sales_lead.username]},
        format="json",
    )
    assert eng.status_code == sales.status_code == 201, (eng.content, sales.content)
    eng_id, sales_id = eng.json()["department_id"], sales.json()["department_id"]
    assert api_client.get(f"{BASE}/credits/{org.id}").json()["available_credits"] == 300.0

    # 2. Engineering's manager allocates inside the budget...
    api_client.force_login(eng_lead)
    inside = api_client.post(
        f"{BASE}/credits/{org.id}/allocate",
        {"user_id": alice.username, "credits": 250, "department_id": eng_id},
        format="json",
    )
    assert inside.status_code == 200, inside.content
    assert inside.json()["allocation"]["department_id"] == eng_id

    # ...and is refused beyond it, in Sales, and on the pool directly
    beyond = api_client.post(
        f"{BASE}/credits/{org.id}/allocate",
        {"user_id": bob.username, "credits": 151, "department_id": eng_id},
        format="json",
    )
    assert_error(beyond, 409, "allocation_exceeds_department_budget")
    other = api_client.post(
        f"{BASE}/credits/{org.id}/allocate",
        {"user_id": bob.username, "credits": 1, "department_id": sales_id},
        format="json",
    )
    assert_error(other, 403, "department_access_denied")
    pool = api_client.post(
        f"{BASE}/credits/{org.id}/allocate", {"user_id": bob.username, "credits": 1}, format="json"
    )
    assert_error(pool, 403, "department_access_denied")
    assert [d["name"] for d in api_client.get(f"{BASE}/credits/{org.id}/departments").json()["results"]] == [
        "Engineering"
    ]

    # 3. Alice spends 12.5 credits (a charge through the ledger, as the gateway does)
    deduct_credits(
        user=alice, org_id=org.id, amount=mc("12.5"), request_id="journey-1", service_name="gpt-4o"
    )

    # 4. Usage by department, as JSON and as CSV
    api_client.force_login(admin)
    query = {"granularity": "month"}  # the default period: the last 30 days
    body = api_client.get(f"{BASE}/usage/{org.id}/by-department", query).json()
    assert [(r["department_id"], r["department"], r["credits_used"]) for r in body["results"]] == [
        (eng_id, "Engineering", 12.5)
    ]
    exported = api_client.get(f"{BASE}/usage/{org.id}/by-department", {**query, "format": "csv"})
    assert exported.status_code == 200, exported.content
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0][:2] == ["period_start", "department"]
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["department"] == "Engineering"
    assert (row["requests"], row["input_tokens"], row["output_tokens"], row["credits_used"]) == (
        "1",
        "0",
        "0",
        "12.500",
    )
    assert len(rows) == 2

    # 5. The org dashboard shows both departments' figures
    dashboard = api_client.get(f"{BASE}/billing/org/{org.id}").json()
    figures = {d["name"]: d for d in dashboard["departments"]}
    assert figures["Engineering"]["allocated_credits"] == 250.0
    assert figures["Engineering"]["used_credits"] == 12.5
    assert figures["Sales"]["budget_credits"] == 300.0
