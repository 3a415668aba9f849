"""The org page's money settings: buying credits through Stripe Checkout (the payments tests'
local Stripe stand-in), the subscription (change plan, cancel), auto top-up and the billing
history's invoice links. Refusals change nothing; members get the API's 403."""

from datetime import UTC, datetime

import pytest
from django.test import Client

from billing.models import AutoTopUpSettings, CreditPurchase, OrganizationSubscription, OrgBillingHistory
from billing.services.subscriptions import create_subscription
from tests.factories import UserFactory
from tests.helpers import mc, pool_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(acme):
    """The portal's "acme", its admin with an e-mail address (Stripe Checkout gets it)."""
    org, admin, member = acme
    admin.email = "boss@example.com"
    admin.save(update_fields=["email"])
    return org, admin, member


def test_an_admin_buys_credits_and_is_sent_to_stripe_checkout(client: Client, acme, fake_stripe) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/buy", {"credits": "5000"})

    purchase = CreditPurchase.objects.get()
    assert response.status_code == 302
    assert response["Location"] == fake_stripe.sessions[purchase.stripe_checkout_session_id]["url"]
    assert (purchase.status, purchase.credits, purchase.org_id) == ("pending", mc(5000), "acme")
    assert pool_of(org).total_credits == mc(1000)  # nothing credited before Stripe says paid


def test_buying_nothing_is_refused_next_to_the_field_and_stripe_is_not_called(
    client: Client, acme, fake_stripe
) -> None:
    client.force_login(acme[1])

    response = client.post("/portal/orgs/acme/buy", {"credits": ""})

    assert response.status_code == 400
    assert '<p class="field-error" id="buy-credits-error">Give either credits or amount_usd.' in (
        response.content.decode()
    )
    assert not CreditPurchase.objects.exists()
    assert fake_stripe.created == []


def test_a_member_cannot_buy(client: Client, acme, fake_stripe) -> None:
    client.force_login(acme[2])

    response = client.post("/portal/orgs/acme/buy", {"credits": "5000"})

    assert response.status_code == 403
    assert not CreditPurchase.objects.exists()
    assert fake_stripe.created == []


def test_the_checkout_return_says_what_happens_next(client: Client, acme) -> None:
    client.force_login(acme[1])

    body = client.get("/portal/orgs/acme/", {"checkout": "success"}).content.decode()

    assert "Payment received by Stripe" in body


@pytest.fixture
def subscribed(acme):
    create_subscription(org_id="acme", plan_code="starter", owner=acme[1])
    return acme


def _plan() -> tuple[str, str]:
    sub = OrganizationSubscription.objects.filter(org_id="acme").order_by("-created_at").first()
    return sub.plan.plan_code, sub.status


def test_an_admin_changes_the_plan_and_cancels(client: Client, subscribed) -> None:
    client.force_login(subscribed[1])
    assert "Starter" in client.get("/portal/orgs/acme/").content.decode()

    assert client.post("/portal/orgs/acme/plan", {"plan_code": "professional"}).status_code == 302
    assert _plan() == ("professional", "active")
    assert client.post("/portal/orgs/acme/cancel").status_code == 302
    assert _plan() == ("professional", "canceled")


def test_an_unknown_plan_is_refused_in_the_api_words(client: Client, subscribed) -> None:
    client.force_login(subscribed[1])

    response = client.post("/portal/orgs/acme/plan", {"plan_code": "platinum"})
    api = client.put(
        "/api/v1/org-billing/subscriptions/acme/upgrade",
        {"plan_code": "platinum"},
        content_type="application/json",
    )

    assert response.status_code == api.status_code
    assert api.json()["error"]["message"] in response.content.decode()
    assert _plan() == ("starter", "active")


def test_a_member_cannot_cancel(client: Client, subscribed) -> None:
    client.force_login(subscribed[2])

    response = client.post("/portal/orgs/acme/cancel")

    assert response.status_code == 403
    assert _plan() == ("starter", "active")


def test_an_admin_saves_auto_topup_settings(client: Client, acme) -> None:
    client.force_login(acme[1])

    response = client.post(
        "/portal/orgs/acme/auto-topup",
        {
            "threshold_credits": "100",
            "amount_credits": "1000",
            "monthly_cap_usd": "50",
            "save_card_at_checkout": "on",
        },
    )

    assert response.status_code == 302
    row = AutoTopUpSettings.objects.get(org_id="acme")
    assert (row.enabled, row.threshold_credits, row.amount_credits, row.save_card_at_checkout) == (
        False,
        mc(100),
        mc(1000),
        True,
    )
    assert 'name="threshold_credits" value="100"' in client.get("/portal/orgs/acme/").content.decode()


def test_enabling_auto_topup_without_a_saved_card_is_refused_and_saves_nothing(client: Client, acme) -> None:
    client.force_login(acme[1])
    form = {"enabled": "on", "threshold_credits": "100", "amount_credits": "1000", "monthly_cap_usd": "50"}

    response = client.post("/portal/orgs/acme/auto-topup", form)

    assert response.status_code in (409, 503)
    assert 'class="field-error"' in response.content.decode()
    assert not AutoTopUpSettings.objects.exists()


def test_a_member_cannot_change_auto_topup(client: Client, acme) -> None:
    client.force_login(acme[2])

    response = client.post(
        "/portal/orgs/acme/auto-topup",
        {"threshold_credits": "1", "amount_credits": "1000", "monthly_cap_usd": "5"},
    )

    assert response.status_code == 403
    assert not AutoTopUpSettings.objects.exists()


def test_invoices_link_to_their_pdf_and_only_web_addresses_become_links(client: Client, acme) -> None:
    org, admin, _ = acme
    when = datetime(2026, 1, 5, tzinfo=UTC)
    for n, url in enumerate(["https://lago.example/inv-1.pdf", "javascript:alert(1)"]):
        OrgBillingHistory.objects.create(
            org=org,
            event_type="invoice",
            external_id=f"inv-{n}",
            amount="19.00",
            metadata={"number": f"INV-{n}", "file_url": url},
            occurred_at=when,
        )
    client.force_login(admin)

    body = client.get("/portal/orgs/acme/").content.decode()

    assert (
        '<a href="https://lago.example/inv-1.pdf" rel="noopener noreferrer">Invoice INV-0 (PDF)</a>' in body
    )
    assert "javascript:alert" not in body


def test_a_system_admin_is_told_the_form_grants_without_payment(client: Client, acme, fake_stripe) -> None:
    org, _, _ = acme
    client.force_login(UserFactory(is_staff=True))
    assert ">Grant credits</button>" in client.get("/portal/orgs/acme/").content.decode()

    response = client.post("/portal/orgs/acme/buy", {"credits": "50"})

    assert response.status_code == 302
    assert response["Location"] == "/portal/orgs/acme/"
    assert pool_of(org).total_credits == mc(1050)  # the API's grant for system admins
    assert fake_stripe.created == []
