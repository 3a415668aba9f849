"""The "My credits" page's individual credits (issue 14 §8): the balance, the "Buy credits" form
through the API's serializer and service (``POST /api/v1/me/credits/purchase``) — the browser
goes to Stripe Checkout (the payments tests' local Stripe stand-in) —, the API's 503 when
payments are not configured, and the person's recent purchases (their own only)."""

import pytest
from django.test import Client

from billing.models import IndividualCreditPurchase
from billing.services import add_individual_credits
from tests.factories import UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(client: Client):
    user = UserFactory(username="ada", email="ada@example.com")
    client.force_login(user)
    return user


def test_buying_credits_sends_the_browser_to_stripe_checkout(client: Client, ada, fake_stripe) -> None:
    response = client.post("/portal/credits/buy", {"credits": "500"})

    purchase = IndividualCreditPurchase.objects.get()
    assert response.status_code == 302
    assert response["Location"] == fake_stripe.sessions[purchase.stripe_checkout_session_id]["url"]
    assert (purchase.user, purchase.credits, purchase.status) == (ada, mc(500), "pending")


def test_buying_nothing_is_refused_next_to_the_field_and_stripe_is_not_called(
    client: Client, ada, fake_stripe
) -> None:
    response = client.post("/portal/credits/buy", {"credits": ""})

    assert response.status_code == 400
    assert '<p class="field-error" id="buy-credits-error">Give either credits or amount_usd.' in (
        response.content.decode()
    )
    assert not IndividualCreditPurchase.objects.exists()
    assert fake_stripe.created == []


def test_without_stripe_the_page_says_payments_are_not_configured_and_writes_nothing(
    client: Client, ada, settings
) -> None:
    settings.STRIPE_SECRET_KEY = ""

    response = client.post("/portal/credits/buy", {"credits": "500"})

    assert response.status_code == 503
    assert "Credit purchases by card are not available yet" in response.content.decode()
    assert 'value="500"' in response.content.decode()
    assert not IndividualCreditPurchase.objects.exists()


def test_the_page_shows_the_balance_and_my_recent_purchases_only(client: Client, ada, fake_stripe) -> None:
    add_individual_credits(user=ada, amount=mc(42), actor_label="test")
    client.post("/portal/credits/buy", {"credits": "600"})
    other = UserFactory()
    IndividualCreditPurchase.objects.create(user=other, credits=mc(777), amount="7.77", currency="USD")

    body = client.get("/portal/").content.decode()

    assert "42 credits available of 42" in body
    mine = IndividualCreditPurchase.objects.get(user=ada)
    assert f'data-purchase-id="{mine.pk}"' in body and ">600<" in body and "Pending" in body
    assert "777" not in body and body.count("data-purchase-id=") == 1


def test_signed_out_people_cannot_buy(client: Client, fake_stripe) -> None:
    response = client.post("/portal/credits/buy", {"credits": "500"})

    assert response.status_code == 302 and "next=/portal/credits/buy" in response["Location"]
    assert not IndividualCreditPurchase.objects.exists()
