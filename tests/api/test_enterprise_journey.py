"""Issue 14's enterprise, black box: everything below goes over HTTP to the app served the way
production serves it (uvicorn in a process of its own, a web process), with API keys as scripts
use them. Only the people, their keys and a model's price are set up beforehand.

An operator grants the pool credits with an expiry; the org admin creates two departments; a
manager allocates inside their budget and is refused outside it; a member calls the LLM gateway
and usage by department answers; a member asks for more credits, cannot approve their own
request, and an admin approves it; a monthly refilling allocation is shown as such; the grants
are listed with their expiry; the books reconcile."""

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from billing.models import ModelPrice
from billing.selectors.reconciliation import find_all_drifts
from organizations.models import Organization, User
from organizations.services import add_member, create_api_key
from tests.factories import OrganizationFactory, UserFactory
from tests.fake_upstream import FakeUpstream, running_upstream
from tests.served import ServedApp, served_app

API = "/api/v1/org-billing"
MODEL = "journey-model"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstream() as up:
        yield up


def _client(app: ServedApp, user: User, org: Organization) -> httpx.Client:
    key = create_api_key(user=user, name="journey", org_id=org.id)[1]
    return httpx.Client(base_url=app.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def test_an_enterprise_runs_its_budgets_over_http(transactional_db, upstream: FakeUpstream, tmp_path: Path):
    # given: an org with an admin, two managers-to-be, two engineers and a seller; an operator
    org = OrganizationFactory()
    operator = UserFactory(is_staff=True)
    admin, eng_lead, sales_lead, alice, bob, carol = (UserFactory() for _ in range(6))
    add_member(org_id=org.id, user=admin, role="admin")
    for user in (eng_lead, sales_lead, alice, bob, carol):
        add_member(org_id=org.id, user=user)
    ModelPrice.objects.create(
        model=MODEL,
        input_credits_per_million=Decimal("1000000"),  # 1 credit per input token
        output_credits_per_million=Decimal("1000000"),
        max_output_tokens=50,
    )
    environment = {"LLM_UPSTREAM_BASE_URL": upstream.base_url, "LLM_UPSTREAM_API_KEY": "sk-upstream"}
    with served_app(tmp_path, **environment) as app:
        ops, boss = _client(app, operator, org), _client(app, admin, org)
        eng, sales = _client(app, eng_lead, org), _client(app, sales_lead, org)
        as_alice, as_bob = _client(app, alice, org), _client(app, bob, org)

        # 1. The operator grants 1,000 credits expiring in 90 days and 200 promotional ones in 7
        expiry = (timezone.now() + timedelta(days=90)).replace(microsecond=0)
        soon = (timezone.now() + timedelta(days=7)).replace(microsecond=0)
        granted = ops.post(
            f"{API}/credits/{org.id}/add", json={"credits": 1000, "expires_at": expiry.isoformat()}
        )
        promo = ops.post(
            f"{API}/credits/{org.id}/add",
            json={"credits": 200, "source": "promotion", "expires_at": soon.isoformat(), "priority": 1},
        )
        assert granted.status_code == promo.status_code == 200, (granted.text, promo.text)

        # ...and bad input changes nothing
        bad = ops.post(f"{API}/credits/{org.id}/add", json={"credits": 5, "expires_at": "yesterday"})
        assert bad.status_code == 400, bad.text
        assert boss.get(f"{API}/credits/{org.id}").json()["total_credits"] == 1200.0

        # 2. The admin creates Engineering (500) and Sales (300) with their managers
        made = {
            name: boss.post(
                f"{API}/credits/{org.id}/departments",
                json={"name": name, "budget_credits": budget, "managers": [lead.username]},
            )
            for name, budget, lead in (("Engineering", 500, eng_lead), ("Sales", 300, sales_lead))
        }
        assert {r.status_code for r in made.values()} == {201}, [r.text for r in made.values()]
        eng_id, sales_id = (made[n].json()["department_id"] for n in ("Engineering", "Sales"))
        assert boss.get(f"{API}/credits/{org.id}").json()["available_credits"] == 400.0

        # 3. Engineering's manager allocates inside the budget, a monthly refilling allocation...
        inside = eng.post(
            f"{API}/credits/{org.id}/allocate",
            json={
                "user_id": alice.username,
                "credits": 300,
                "department_id": eng_id,
                "period": "monthly",
                "period_mode": "refill",
                "rollover_cap_credits": 50,
            },
        )
        assert inside.status_code == 200, inside.text
        allocation = inside.json()["allocation"]
        assert (allocation["period"], allocation["period_mode"]) == ("monthly", "refill")
        assert allocation["rollover_cap_credits"] == 50.0
        assert allocation["period_amount_credits"] == 300.0
        assert allocation["department_id"] == eng_id

        # ...and is refused beyond it, in Sales, and on the pool directly
        beyond = eng.post(
            f"{API}/credits/{org.id}/allocate",
            json={"user_id": bob.username, "credits": 201, "department_id": eng_id},
        )
        assert (beyond.status_code, _error_code(beyond)) == (409, "allocation_exceeds_department_budget")
        elsewhere = eng.post(
            f"{API}/credits/{org.id}/allocate",
            json={"user_id": carol.username, "credits": 1, "department_id": sales_id},
        )
        assert (elsewhere.status_code, _error_code(elsewhere)) == (403, "department_access_denied")
        pool = eng.post(f"{API}/credits/{org.id}/allocate", json={"user_id": bob.username, "credits": 1})
        assert (pool.status_code, _error_code(pool)) == (403, "department_access_denied")
        ok = eng.post(
            f"{API}/credits/{org.id}/allocate",
            json={"user_id": bob.username, "credits": 100, "department_id": eng_id},
        )
        assert ok.status_code == 200, ok.text
        assert (
            sales.post(
                f"{API}/credits/{org.id}/allocate",
                json={"user_id": carol.username, "credits": 300, "department_id": sales_id},
            ).status_code
            == 200
        )

        # 4. Alice calls the model through the gateway; usage by department shows Engineering's spend
        call = as_alice.post(
            "/api/v1/llm/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20},
        )
        assert call.status_code == 200, call.text
        cost = Decimal(call.headers["X-Cost-Incurred"])
        assert cost > 0
        by_department = boss.get(f"{API}/usage/{org.id}/by-department", params={"granularity": "month"})
        assert by_department.status_code == 200, by_department.text
        used = {r["department"]: Decimal(str(r["credits_used"])) for r in by_department.json()["results"]}
        assert used == {"Engineering": cost}
        csv_export = boss.get(
            f"{API}/usage/{org.id}/by-department", params={"granularity": "month", "format": "csv"}
        )
        assert csv_export.status_code == 200 and csv_export.text.startswith("period_start,department")

        # 5. Bob asks for 50 more credits; he cannot approve his own request, a member cannot
        # approve anyone's, the admin can
        asked = as_bob.post(f"{API}/credits/{org.id}/requests", json={"credits": 50, "reason": "eval run"})
        assert asked.status_code == 201, asked.text
        request_id = asked.json()["request_id"]
        assert asked.json()["status"] == "pending"
        own = as_bob.post(f"{API}/credits/{org.id}/requests/{request_id}/approve")
        assert own.status_code == 403, own.text
        peer = as_alice.post(f"{API}/credits/{org.id}/requests/{request_id}/approve")
        assert peer.status_code in (403, 404), peer.text
        approved = boss.post(f"{API}/credits/{org.id}/requests/{request_id}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        again = boss.post(f"{API}/credits/{org.id}/requests/{request_id}/approve")
        assert (again.status_code, _error_code(again)) == (409, "request_not_pending")
        allocations = {
            a["user_id"]: a for a in boss.get(f"{API}/credits/{org.id}/allocations").json()["results"]
        }
        assert allocations[bob.username]["allocated_credits"] == 150.0
        assert allocations[alice.username]["period"] == "monthly"
        assert allocations[alice.username]["period_mode"] == "refill"

        # 6. The grants are listed with their expiry; the promotion (priority 1) burns first
        grants = boss.get(f"{API}/credits/{org.id}/grants")
        assert grants.status_code == 200, grants.text
        listed = {g["source"]: g for g in grants.json()["results"]}
        assert listed["promotion"]["credits"] == 200.0
        assert listed["promotion"]["expires_at"] is not None
        assert Decimal(str(listed["promotion"]["remaining_credits"])) == Decimal(200) - cost
        assert listed["manual"]["remaining_credits"] == 1000.0
        assert as_alice.get(f"{API}/credits/{org.id}/grants").status_code == 403

    # then: the books reconcile
    assert find_all_drifts() == []
