"""The org's usage alerts on its page and its audit log page (paginated, filtered), for admins
only; another org's log is the 404 page."""

from datetime import UTC, date, datetime

import pytest
from django.test import Client

from billing.audit import record_audit_event
from billing.models import UsageAlert
from tests.factories import OrganizationFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db


def test_an_admin_sees_the_orgs_usage_alerts(client: Client, acme) -> None:
    org, admin, _ = acme
    when = datetime(2026, 3, 2, tzinfo=UTC)
    UsageAlert.objects.create(
        scope="pool",
        org=org,
        threshold=80,
        period_start=date(2026, 3, 1),
        used_credits=mc(800),
        capacity_credits=mc(1000),
        first_fired_at=when,
        last_fired_at=when,
    )
    client.force_login(admin)

    body = client.get("/portal/orgs/acme/").content.decode()

    table = body[body.index('id="alerts"') :]
    table = table[: table.index("</table>")]
    assert "the pool" in table and "80%" in table and "800 of 1,000" in table


def test_the_audit_log_pages_and_filters(client: Client, acme) -> None:
    org, admin, _ = acme
    for n in range(55):
        record_audit_event(action="test.ping", actor_label="robot", org_id=org.id, target_id=n)
    OrganizationFactory(id="other")
    record_audit_event(action="test.ping", actor_label="robot", org_id="other")
    client.force_login(admin)

    first = client.get("/portal/orgs/acme/audit", {"action": "test."}).content.decode()
    second = client.get("/portal/orgs/acme/audit", {"action": "test.", "page": "2"}).content.decode()
    by_admin = client.get("/portal/orgs/acme/audit", {"actor": "boss"}).content.decode()

    assert "55 events matching." in first
    assert first.count("<td>test.ping</td>") == 50
    assert second.count("<td>test.ping</td>") == 5
    assert "Page 2 of 2" in second
    assert "test.ping" not in by_admin


def test_a_member_gets_the_api_refusal_and_another_org_the_404_page(client: Client, acme) -> None:
    OrganizationFactory(id="globex")
    client.force_login(acme[2])

    assert client.get("/portal/orgs/acme/audit").status_code == 403
    assert client.get("/portal/orgs/globex/audit").status_code == 404
