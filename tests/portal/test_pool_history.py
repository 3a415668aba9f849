"""The org page's pool history: the total and used credits at the end of each UTC day, from
the rows reconciliation checks the pool against, ending at the pool's present figures."""

import json
from datetime import UTC, datetime, time, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import OrgBillingHistory
from billing.selectors.pool_history import pool_history
from billing.services import add_credits_to_pool, deduct_credits
from tests.factories import OrganizationFactory
from tests.helpers import mc, pool_of

pytestmark = pytest.mark.django_db


def _row(org, kind: str, credits: int | None, at: datetime, ref: str) -> None:
    OrgBillingHistory.objects.create(
        org=org, event_type=kind, external_id=ref, credits=credits, occurred_at=at
    )


def test_each_day_ends_with_the_credits_added_so_far_and_the_usage_up_to_it():
    org = OrganizationFactory(id="hist")
    today = timezone.now().astimezone(UTC).date()
    days = [today - timedelta(days=n) for n in range(29, -1, -1)]
    noon = lambda day: datetime.combine(day, time(12), tzinfo=UTC)  # noqa: E731
    _row(org, "credit_grant", mc(1000), noon(today - timedelta(days=40)), "g-old")  # before the window
    _row(org, "credit_purchase", mc(500), noon(days[2]), "p-1")
    _row(org, "refund", mc(200), noon(days[5]), "r-1")
    _row(org, "credit_grant", None, noon(days[6]), "g-none")  # no credits: not counted
    _row(org, "invoice", mc(999), noon(days[7]), "inv-1")  # money, not credits
    daily_used = [(day, {1: mc(3), 5: mc(4)}.get(n, 0)) for n, day in enumerate(days)]

    history = pool_history(org_id=org.id, used_credits=mc(10), daily_used=daily_used)

    assert [entry.day for entry in history] == days
    figures = [(entry.total_credits, entry.used_credits) for entry in history]
    assert figures[0] == (mc(1000), mc(3))  # 3 used before the window
    assert figures[1] == (mc(1000), mc(6))
    assert figures[2] == (mc(1500), mc(6))
    assert figures[5] == (mc(1300), mc(10))
    assert figures[-1] == (mc(1300), mc(10))


def test_the_admins_chart_ends_at_the_pools_present_total_and_used(client: Client, acme):
    org, admin, member = acme
    add_credits_to_pool(org_id=org.id, amount=mc(250), actor_label="test")
    deduct_credits(user=member, org_id=org.id, amount=mc("12.5"), request_id="h-1", service_name="gpt-x")
    pool = pool_of(org)
    client.force_login(admin)

    body = client.get("/portal/orgs/acme/").content.decode()

    start = body.index('id="pool-chart-data"')
    data = json.loads(body[body.index(">", start) + 1 : body.index("</script>", start)])
    assert data["type"] == "line"
    total, used = (series["data"] for series in data["series"])
    assert len(total) == len(used) == 30
    assert (float(total[-1]), float(used[-1])) == (pool.total_credits / 1000, pool.used_credits / 1000)
    assert (float(total[-1]), float(used[-1])) == (1250.0, 12.5)


def test_a_member_sees_no_pool_history(client: Client, acme):
    _, _, member = acme
    client.force_login(member)

    body = client.get("/portal/orgs/acme/").content.decode()

    assert "pool-chart-data" not in body
