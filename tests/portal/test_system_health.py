"""The system page's plans and revenue, reconciliation runs and drifts, failed webhooks and top
users, with links into the Django admin."""

from datetime import UTC, datetime

import pytest
from django.test import Client

from billing.audit import record_audit_event
from billing.models import ReconciliationRun, WebhookEvent
from billing.services import add_credits_to_pool, allocate_credits_to_user, deduct_credits
from billing.services.subscriptions import create_subscription
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db


def _table(body: str, table_id: str) -> str:
    rest = body[body.index(f'<table id="{table_id}">') :]
    return rest[: rest.index("</table>")]


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(UserFactory(is_staff=True))
    return client


def test_plans_show_their_live_subscriptions_and_monthly_revenue(staff: Client) -> None:
    for n in range(2):
        owner = UserFactory()
        create_subscription(org_id=f"sub-{n}", plan_code="professional", owner=owner, org_name=f"Sub {n}")

    body = staff.get("/portal/system/").content.decode()

    plans = _table(body, "plans")
    row = plans[plans.index("Professional") :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">2</td>' in row
    assert "98.00 USD" in row  # 2 × 49.00
    assert 'href="/admin/billing/plan/"' in body


def test_reconciliation_runs_and_the_latest_drifts_are_shown(staff: Client) -> None:
    when = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)
    ReconciliationRun.objects.create(started_at=when, finished_at=when, drift_count=1)
    OrganizationFactory(id="drifty")
    record_audit_event(
        action="ledger.drift_detected",
        actor_label="task:reconcile_credits",
        metadata={
            "count": 1,
            "drifts": [
                {"check": "pool_used", "org_id": "drifty", "target": "pool", "expected": 5000, "actual": 4000}
            ],
        },
    )

    body = staff.get("/portal/system/").content.decode()

    assert "1 drift." in body
    drifts = _table(body, "drifts")
    assert 'href="/portal/orgs/drifty/"' in drifts
    assert '<td class="num">5</td><td class="num">4</td>' in drifts  # credits, not millicredits


def test_failed_webhooks_are_listed_with_a_link_to_the_admin(staff: Client) -> None:
    failed = WebhookEvent.objects.create(
        provider="stripe",
        event_id="evt_bad",
        event_type="checkout.session.completed",
        payload={},
        status="failed",
        error="purchase not found",
        attempts=3,
    )
    WebhookEvent.objects.create(
        provider="stripe", event_id="evt_ok", event_type="x", payload={}, status="processed"
    )

    body = staff.get("/portal/system/").content.decode()

    webhooks = _table(body, "webhooks")
    assert "evt_bad" in webhooks and "purchase not found" in webhooks
    assert "evt_ok" not in webhooks
    assert f'href="/admin/billing/webhookevent/{failed.pk}/change/"' in webhooks
    assert "Failed webhooks (1)" in body


def test_top_users_across_organizations(staff: Client) -> None:
    OrganizationFactory(id="acme")
    add_credits_to_pool(org_id="acme", amount=mc(1000), actor_label="test")
    for name, spent in (("light", 2), ("heavy", 9)):
        user = UserFactory(username=name)
        add_member(org_id="acme", user=user, actor_label="test")
        allocate_credits_to_user(org_id="acme", user=user, amount=mc(50), actor_label="test")
        deduct_credits(user=user, org_id="acme", amount=mc(spent), request_id=name, service_name="m")

    users = _table(staff.get("/portal/system/").content.decode(), "top-users")

    assert users.index("heavy") < users.index("light")
    assert '<td class="num">9</td>' in users
