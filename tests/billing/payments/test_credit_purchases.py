"""POST /credits/{org_id}/add by an org admin: a pending CreditPurchase and a Stripe Checkout
Session created through the real ``stripe`` library against a local Stripe stand-in."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import AuditEvent, CreditPurchase
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.django_db


def add_url(org_id: str) -> str:
    return reverse("org-billing-credits-add", args=[org_id])


def test_org_admin_buys_credits_and_gets_the_checkout_url(api_client, org_team, fake_stripe):
    api_client.force_login(org_team.admin)
    before = snapshot_balances()

    response = api_client.post(add_url(org_team.org.id), {"credits": 5000}, format="json")

    assert response.status_code == 201, response.content
    purchase = CreditPurchase.objects.get()
    session = fake_stripe.sessions[purchase.stripe_checkout_session_id]
    body = response.json()
    assert body["checkout_url"] == session["url"]
    assert body["purchase"] == {
        "id": purchase.pk,
        "org_id": org_team.org.id,
        "status": "pending",
        "credits": 5000.0,
        "amount_usd": 50.0,
        "currency": "USD",
        "checkout_url": session["url"],
        "checkout_expires_at": "2026-01-02T10:00:00Z",
        "created_at": body["purchase"]["created_at"],
    }
    assert (purchase.credits, purchase.amount, purchase.purchased_by) == (
        mc(5000),
        Decimal("50.00"),
        org_team.admin,
    )
    # What Stripe was asked for.
    (sent,) = fake_stripe.created
    assert sent["mode"] == "payment"
    assert sent["line_items"] == {
        "0": {
            "price_data": {
                "currency": "usd",
                "unit_amount": "5000",
                "product_data": {
                    "name": "5,000 credits",
                    "description": f"Prepaid credits for {org_team.org.org_name}",
                },
            },
            "quantity": "1",
        }
    }
    assert sent["client_reference_id"] == str(purchase.pk)
    assert sent["metadata"] == {"purchase_id": str(purchase.pk), "org_id": org_team.org.id}
    assert sent["payment_intent_data"] == {
        "metadata": {"purchase_id": str(purchase.pk), "org_id": org_team.org.id}
    }
    assert sent["success_url"] == "https://app.example.test/billing?checkout=success"
    assert sent["cancel_url"] == "https://app.example.test/billing?checkout=canceled"
    assert sent["customer_email"] == org_team.admin.email
    assert fake_stripe.idempotency_keys == [f"credit-purchase-{purchase.pk}"]
    # Nothing is credited before Stripe says it was paid.
    assert snapshot_balances()["pools"] == before["pools"]
    assert AuditEvent.objects.filter(action="purchase.created", target_id=str(purchase.pk)).exists()


def test_org_admin_buys_for_a_dollar_amount(api_client, org_team, fake_stripe):
    api_client.force_login(org_team.admin)

    response = api_client.post(add_url(org_team.org.id), {"amount_usd": Decimal("12.34")}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["purchase"]["credits"] == 1234.0
    assert fake_stripe.created[0]["line_items"]["0"]["price_data"]["unit_amount"] == "1234"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"credits": 100}, "invalid_amount"),  # $1.00: under the $5.00 minimum
        ({"credits": 2_000_000}, "invalid_amount"),  # $20,000: over the maximum
        ({"credits": Decimal("1000.5")}, "invalid_amount"),  # half a cent
        ({"credits": 1000, "amount_usd": 10}, "validation_error"),  # both
        ({}, "validation_error"),  # neither
        ({"credits": 1000, "purchase_amount": 10}, "validation_error"),  # staff-only field
        ({"amount_usd": "10"}, "validation_error"),  # a string
    ],
)
def test_bad_purchase_input_is_400_and_opens_nothing(api_client, org_team, fake_stripe, body, code):
    api_client.force_login(org_team.admin)

    assert_error(api_client.post(add_url(org_team.org.id), body, format="json"), 400, code)
    assert not CreditPurchase.objects.exists()
    assert fake_stripe.created == []


def test_stripe_down_is_503_and_the_purchase_is_failed(api_client, org_team, fake_stripe):
    fake_stripe.fail_next(status=500, times=3)  # more than the library's own retry
    api_client.force_login(org_team.admin)
    before = snapshot_balances()

    response = api_client.post(add_url(org_team.org.id), {"credits": 1000}, format="json")

    error = assert_error(response, 503, "billing_backend_unavailable")
    assert error["details"]["provider"] == "stripe"
    purchase = CreditPurchase.objects.get()
    assert purchase.status == "failed" and purchase.checkout_url == ""
    assert snapshot_balances()["pools"] == before["pools"]


def test_a_wrong_stripe_key_is_503_not_a_crash(api_client, org_team, fake_stripe, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_wrong"
    api_client.force_login(org_team.admin)

    assert_error(
        api_client.post(add_url(org_team.org.id), {"credits": 1000}, format="json"),
        503,
        "billing_backend_unavailable",
    )


def test_without_stripe_configured_org_admins_still_get_payments_not_configured(
    api_client, org_team, settings
):
    settings.STRIPE_SECRET_KEY = ""
    api_client.force_login(org_team.admin)

    assert_error(
        api_client.post(add_url(org_team.org.id), {"credits": 1000}, format="json"),
        503,
        "payments_not_configured",
    )
    assert not CreditPurchase.objects.exists()


def test_system_admins_still_grant_directly(api_client, org_team, staff_user, fake_stripe):
    api_client.force_login(staff_user)

    response = api_client.post(add_url(org_team.org.id), {"credits": 10}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["credits_added"] == 10.0
    assert fake_stripe.created == [] and not CreditPurchase.objects.exists()


def test_system_admins_cannot_grant_by_dollar_amount(api_client, org_team, staff_user, fake_stripe):
    api_client.force_login(staff_user)

    assert_error(
        api_client.post(add_url(org_team.org.id), {"amount_usd": 10}, format="json"), 400, "validation_error"
    )


@pytest.mark.parametrize(
    ("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, "organization_not_found")]
)
def test_members_and_outsiders_cannot_buy(api_client, org_team, fake_stripe, who, status, code):
    api_client.force_login(getattr(org_team, who))

    assert_error(api_client.post(add_url(org_team.org.id), {"credits": 1000}, format="json"), status, code)
    assert fake_stripe.created == []


def test_the_same_idempotency_key_returns_the_same_checkout(api_client, org_team, fake_stripe):
    api_client.force_login(org_team.admin)
    headers = {"Idempotency-Key": "buy-1"}

    first = api_client.post(add_url(org_team.org.id), {"credits": 1000}, format="json", headers=headers)
    second = api_client.post(add_url(org_team.org.id), {"credits": 1000}, format="json", headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert CreditPurchase.objects.count() == 1 and len(fake_stripe.created) == 1


def test_the_checkout_returns_to_the_buying_orgs_own_page(api_client, org_team, fake_stripe, settings):
    """``{org_id}`` in the return addresses becomes the buying org's id (the portal's org page);
    Stripe's own ``{CHECKOUT_SESSION_ID}`` is left for Stripe."""
    settings.STRIPE_CHECKOUT_SUCCESS_URL = (
        "https://app.example.test/portal/orgs/{org_id}/?checkout=success&session={CHECKOUT_SESSION_ID}"
    )
    settings.STRIPE_CHECKOUT_CANCEL_URL = "https://app.example.test/portal/orgs/{org_id}/?checkout=canceled"
    api_client.force_login(org_team.admin)

    response = api_client.post(add_url(org_team.org.id), {"credits": 1000}, format="json")

    assert response.status_code == 201, response.content
    (sent,) = fake_stripe.created
    org_id = org_team.org.id
    assert sent["success_url"] == (
        f"https://app.example.test/portal/orgs/{org_id}/?checkout=success&session={{CHECKOUT_SESSION_ID}}"
    )
    assert sent["cancel_url"] == f"https://app.example.test/portal/orgs/{org_id}/?checkout=canceled"
