"""Invoice sync: every page of Lago's invoices, per organization, into org_billing_history once."""

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from billing.models import OrgBillingHistory
from billing.tasks import sync_lago_invoices
from organizations.models import Organization
from tests.factories import OrganizationFactory
from tests.fakes.lago import API_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def lago_orgs(fake_lago):
    """Two organizations known to Lago: five invoices for the first, one for the second."""
    first = OrganizationFactory(id="inv-org")
    second = OrganizationFactory(id="other-org")
    Organization.objects.filter(pk__in=[first.pk, second.pk]).update(lago_customer_id="lago-cust")
    OrganizationFactory(id="not-in-lago")  # no Lago customer: not synced
    fake_lago.invoices["inv-org"] = [
        fake_lago.invoice("inv-org", number=f"INV-{n}", cents=1900 + n, payment_status=status)
        for n, status in enumerate(["succeeded", "pending", "failed", "succeeded", "pending"], start=1)
    ]
    fake_lago.invoices["other-org"] = [fake_lago.invoice("other-org", number="OTHER-1", cents=9900)]
    return first, second


def test_command_syncs_every_page_of_each_org_once(lago_orgs, fake_lago, capsys):
    call_command("sync_lago_invoices", "--no-progress")

    calls = fake_lago.requests("GET", "/api/v1/invoices")
    assert [(c.query["external_customer_id"], c.query["page"], c.query["per_page"]) for c in calls] == [
        ("inv-org", "1", "2"),
        ("inv-org", "2", "2"),
        ("inv-org", "3", "2"),
        ("other-org", "1", "2"),
    ]
    assert all(c.authorization == f"Bearer {API_KEY}" for c in calls)
    invoices = OrgBillingHistory.objects.filter(org_id="inv-org", event_type="invoice").order_by(
        "description"
    )
    assert [(row.description, row.amount, row.status) for row in invoices] == [
        (f"Invoice INV-{n}", Decimal(1900 + n) / 100, "finalized") for n in range(1, 6)
    ]
    first = fake_lago.invoices["inv-org"][0]
    row = OrgBillingHistory.objects.get(external_id=f"lago-invoice-{first['lago_id']}")
    assert row.metadata["number"] == "INV-1"
    assert row.metadata["payment_status"] == "succeeded"
    assert str(row.occurred_at.date()) == "2026-01-31"
    # Payment outcomes: the succeeded ones carry the money, the failed one only says so.
    payments = OrgBillingHistory.objects.filter(org_id="inv-org", event_type="payment").order_by(
        "description"
    )
    assert [(p.description, p.amount, p.status) for p in payments] == [
        ("Payment of invoice INV-1 succeeded", Decimal("19.01"), "succeeded"),
        ("Payment of invoice INV-3 failed", None, "failed"),
        ("Payment of invoice INV-4 succeeded", Decimal("19.04"), "succeeded"),
    ]
    assert list(
        OrgBillingHistory.objects.filter(org_id="other-org").values_list("description", flat=True)
    ) == ["Invoice OTHER-1"]
    assert not OrgBillingHistory.objects.filter(org_id="not-in-lago").exists()
    assert "6 invoices seen, 6 new invoices, 3 new payments" in capsys.readouterr().out


def test_a_second_sync_writes_nothing_new_and_follows_status_changes(lago_orgs, fake_lago):
    call_command("sync_lago_invoices", "--no-progress")
    rows_before = OrgBillingHistory.objects.count()
    second = fake_lago.invoices["inv-org"][1]
    second.update(status="voided", voided_at="2026-02-02T00:00:00Z")

    result = sync_lago_invoices.apply().get()

    assert result["invoices_created"] == 0 and result["payments_created"] == 0
    assert OrgBillingHistory.objects.count() == rows_before
    row = OrgBillingHistory.objects.get(external_id=f"lago-invoice-{second['lago_id']}")
    assert row.status == "voided"
    assert row.metadata["voided_at"] == "2026-02-02T00:00:00Z"


def test_a_payment_that_succeeds_later_is_recorded_once_when_it_does(lago_orgs, fake_lago):
    call_command("sync_lago_invoices", "--no-progress", "--org", "inv-org")
    pending = fake_lago.invoices["inv-org"][1]
    pending["payment_status"] = "succeeded"

    call_command("sync_lago_invoices", "--no-progress", "--org", "inv-org")
    call_command("sync_lago_invoices", "--no-progress", "--org", "inv-org")

    rows = OrgBillingHistory.objects.filter(
        external_id=f"lago-invoice-{pending['lago_id']}-payment-succeeded"
    )
    assert [(r.amount, r.status) for r in rows] == [(Decimal("19.02"), "succeeded")]


def test_the_task_syncs_one_org_when_asked(lago_orgs, fake_lago):
    result = sync_lago_invoices.apply(kwargs={"org_id": "other-org"}).get()

    assert result == {
        "organizations": 1,
        "invoices_seen": 1,
        "invoices_created": 1,
        "payments_created": 0,
        "failed_orgs": [],
        "refused_invoices": [],
    }
    assert not OrgBillingHistory.objects.filter(org_id="inv-org").exists()


def test_lago_down_mid_sync_keeps_what_was_synced_and_fails_the_command(lago_orgs, fake_lago):
    fake_lago.server.expect_oneshot_request(
        "/api/v1/invoices",
        method="GET",
        query_string={"external_customer_id": "inv-org", "per_page": "2", "page": "2"},
    ).respond_with_json({"status": 500, "error": "Internal Server Error"}, status=500)

    with pytest.raises(CommandError, match="billing_backend_unavailable: not synced: inv-org"):
        call_command("sync_lago_invoices", "--no-progress")

    assert OrgBillingHistory.objects.filter(org_id="inv-org", event_type="invoice").count() == 2  # page 1
    assert OrgBillingHistory.objects.filter(org_id="other-org").count() == 1
    # The next run completes it without duplicating page 1.
    call_command("sync_lago_invoices", "--no-progress")
    assert OrgBillingHistory.objects.filter(org_id="inv-org", event_type="invoice").count() == 5


def test_an_invoice_of_another_org_under_a_known_id_is_refused(lago_orgs, fake_lago):
    call_command("sync_lago_invoices", "--no-progress", "--org", "other-org")
    stolen = dict(fake_lago.invoices["other-org"][0])
    fake_lago.invoices["inv-org"] = [stolen]

    fake_lago.invoices["inv-org"].append(fake_lago.invoice("inv-org", number="OWN-1", cents=100))

    with pytest.raises(CommandError, match=f"invoices refused.*{stolen['lago_id']}"):
        call_command("sync_lago_invoices", "--no-progress", "--org", "inv-org")

    assert list(OrgBillingHistory.objects.filter(org_id="inv-org").values_list("description", flat=True)) == [
        "Invoice OWN-1"
    ]
    assert (
        OrgBillingHistory.objects.get(external_id=f"lago-invoice-{stolen['lago_id']}").org_id == "other-org"
    )


def test_unknown_org_is_a_command_error(fake_lago):
    with pytest.raises(CommandError, match="organization_not_found"):
        call_command("sync_lago_invoices", "--org", "nope", "--no-progress")


def test_the_task_is_skipped_while_lago_is_not_configured(fake_lago, settings):
    settings.LAGO_API_URL = ""

    assert sync_lago_invoices.apply().get() == {"skipped": "lago_not_configured"}
    assert fake_lago.requests() == []
