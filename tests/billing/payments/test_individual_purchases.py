"""POST /api/v1/me/credits/purchase: a user buys credits for their own balance through Stripe
Checkout (the real ``stripe`` library against the local stand-in); the Stripe webhook fulfils
it exactly once into the individual balance, also when delivered again or concurrently."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import (
    AuditEvent,
    CreditPurchase,
    IndividualCreditBalance,
    IndividualCreditEntry,
    IndividualCreditPurchase,
    WebhookEvent,
)
from billing.selectors.reconciliation import find_all_drifts
from billing.services import deduct_credits
from tests.concurrency import run_concurrently
from tests.factories import UserFactory
from tests.fakes.stripe import sign
from tests.helpers import assert_error, mc

pytestmark = pytest.mark.django_db

PURCHASE_URL = reverse("api-me-credits-purchase")
WEBHOOK_URL = reverse("webhook-stripe")


def deliver(client, body: str):
    return client.post(
        WEBHOOK_URL, data=body, content_type="application/json", headers={"Stripe-Signature": sign(body)}
    )


def total_of(user) -> int:
    balance = IndividualCreditBalance.objects.filter(user=user).first()
    return balance.total_credits if balance else 0


@pytest.fixture
def buyer(api_client, fake_stripe):
    """A user without any organization who opened a checkout for 500 credits ($5)."""
    user = UserFactory(email="ada@example.test")
    api_client.force_login(user)
    response = api_client.post(PURCHASE_URL, {"credits": 500}, format="json")
    assert response.status_code == 201, response.content
    return user, IndividualCreditPurchase.objects.get()


def completed(fake_stripe, purchase, kind: str = "checkout.session.completed") -> str:
    return fake_stripe.event(kind, fake_stripe.completed_session(purchase.stripe_checkout_session_id))


def test_a_user_opens_a_checkout_for_their_own_credits(api_client, buyer, fake_stripe):
    user, purchase = buyer

    session = fake_stripe.sessions[purchase.stripe_checkout_session_id]
    (sent,) = fake_stripe.created
    assert (purchase.user, purchase.credits, purchase.amount, purchase.status) == (
        user,
        mc(500),
        Decimal("5.00"),
        "pending",
    )
    assert purchase.checkout_url == session["url"]
    assert sent["metadata"] == {"individual_purchase_id": str(purchase.pk), "user_id": user.username}
    assert sent["payment_intent_data"] == {"metadata": sent["metadata"]}
    assert "client_reference_id" not in sent  # the organization handlers must not claim it
    assert sent["line_items"]["0"]["price_data"]["unit_amount"] == "500"
    assert sent["customer_email"] == "ada@example.test"
    assert fake_stripe.idempotency_keys == [f"individual-credit-purchase-{purchase.pk}"]
    assert total_of(user) == 0  # nothing before Stripe says it was paid
    assert not CreditPurchase.objects.exists()
    assert AuditEvent.objects.filter(action="individual_purchase.created", actor=user).exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"credits": 1}, 400, "invalid_amount"),  # $0.01, under the $5 minimum
        ({"credits": 2_000_000}, 400, "invalid_amount"),  # $20,000, over the maximum
        ({"credits": 500, "amount_usd": 5}, 400, "validation_error"),
        ({}, 400, "validation_error"),
        ({"credits": "500"}, 400, "validation_error"),
    ],
)
def test_a_purchase_outside_the_bounds_is_refused_and_writes_nothing(
    api_client, fake_stripe, body, status, code
):
    api_client.force_login(UserFactory())

    response = api_client.post(PURCHASE_URL, body, format="json")

    assert_error(response, status, code)
    assert not IndividualCreditPurchase.objects.exists()
    assert fake_stripe.created == []


def test_without_stripe_a_purchase_is_503_and_writes_nothing(api_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    api_client.force_login(UserFactory())

    response = api_client.post(PURCHASE_URL, {"credits": 500}, format="json")

    assert_error(response, 503, "payments_not_configured")
    assert not IndividualCreditPurchase.objects.exists()


def test_a_paid_checkout_adds_the_credits_to_the_individual_balance_once(
    client, api_client, buyer, fake_stripe
):
    user, purchase = buyer
    body = completed(fake_stripe, purchase)

    first, second = deliver(client, body), deliver(client, body)
    again = deliver(client, completed(fake_stripe, purchase, "checkout.session.async_payment_succeeded"))

    assert [r.status_code for r in (first, second, again)] == [200, 200, 200]
    assert first.json()["status"] == "processed" and second.json()["replayed"] is True
    assert total_of(user) == mc(500)
    purchase.refresh_from_db()
    assert purchase.status == "fulfilled" and purchase.fulfilled_at is not None
    assert purchase.stripe_payment_intent_id == f"pi_for_{purchase.stripe_checkout_session_id}"
    (entry,) = IndividualCreditEntry.objects.all()
    assert (entry.kind, entry.credits, entry.total_after, entry.external_id) == (
        "purchase",
        mc(500),
        mc(500),
        f"stripe-checkout-{purchase.stripe_checkout_session_id}",
    )
    assert AuditEvent.objects.filter(action="individual_purchase.fulfilled").count() == 1
    # the buyer sees it
    mine = api_client.get(reverse("api-me-credits")).json()
    assert mine["total_credits"] == 500.0 and mine["available_credits"] == 500.0
    assert [p["status"] for p in mine["purchases"]] == ["fulfilled"]
    assert [(e["kind"], e["credits"]) for e in mine["entries"]] == [("purchase", 500.0)]
    assert find_all_drifts() == []


def test_an_unpaid_or_tampered_session_adds_nothing(client, buyer, fake_stripe):
    user, purchase = buyer
    unpaid = fake_stripe.completed_session(purchase.stripe_checkout_session_id, payment_status="unpaid")
    underpaid = {**fake_stripe.completed_session(purchase.stripe_checkout_session_id), "amount_total": 100}

    deliver(client, fake_stripe.event("checkout.session.completed", unpaid))
    refused = deliver(client, fake_stripe.event("checkout.session.completed", underpaid))

    assert total_of(user) == 0
    assert_error(refused, 409, "conflict")
    assert IndividualCreditPurchase.objects.get().status == "pending"


def test_an_expired_checkout_is_canceled_and_never_fulfilled_later(client, buyer, fake_stripe):
    user, purchase = buyer

    deliver(
        client,
        fake_stripe.event(
            "checkout.session.expired", fake_stripe.expired_session(purchase.stripe_checkout_session_id)
        ),
    )

    purchase.refresh_from_db()
    assert purchase.status == "canceled"
    assert total_of(user) == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_a_payment_add_the_credits_once(api_client, fake_stripe):
    user = UserFactory()
    api_client.force_login(user)
    assert api_client.post(PURCHASE_URL, {"credits": 500}, format="json").status_code == 201
    purchase = IndividualCreditPurchase.objects.get()
    session = fake_stripe.completed_session(purchase.stripe_checkout_session_id)
    bodies = [
        fake_stripe.event(kind, session)
        for kind in ["checkout.session.completed", "checkout.session.async_payment_succeeded"] * 4
    ]
    bodies[1] = bodies[0]  # the same event twice, too

    responses = run_concurrently(lambda i: deliver(Client(), bodies[i]), len(bodies))

    assert [r.status_code for r in responses] == [200] * len(bodies), [r.content for r in responses]
    assert total_of(user) == mc(500)
    assert IndividualCreditEntry.objects.count() == 1
    assert AuditEvent.objects.filter(action="individual_purchase.fulfilled").count() == 1
    assert WebhookEvent.objects.exclude(status="processed").count() == 0


def test_a_full_refund_takes_back_credits_still_free(client, buyer, fake_stripe):
    user, purchase = buyer
    deliver(client, completed(fake_stripe, purchase))

    response = deliver(
        client,
        fake_stripe.event(
            "charge.refunded", fake_stripe.refunded_charge(purchase.stripe_checkout_session_id)
        ),
    )

    assert response.json()["status"] == "processed"
    purchase.refresh_from_db()
    assert (purchase.status, purchase.refunded_amount) == ("refunded", Decimal("5.00"))
    assert total_of(user) == 0
    assert list(IndividualCreditEntry.objects.order_by("pk").values_list("kind", "credits")) == [
        ("purchase", mc(500)),
        ("refund", -mc(500)),
    ]


def test_a_refund_of_spent_credits_goes_to_review_and_takes_nothing(client, buyer, fake_stripe):
    user, purchase = buyer
    deliver(client, completed(fake_stripe, purchase))
    deduct_credits(user=user, org_id=None, amount=mc(1), request_id="spent-1")

    deliver(
        client,
        fake_stripe.event(
            "charge.refunded", fake_stripe.refunded_charge(purchase.stripe_checkout_session_id)
        ),
    )

    purchase.refresh_from_db()
    assert purchase.status == "refund_review"
    assert total_of(user) == mc(500)
    assert AuditEvent.objects.filter(action="individual_purchase.refund_needs_review").exists()
    assert find_all_drifts() == []


def test_a_refund_before_the_payment_event_means_the_payment_is_never_credited(client, buyer, fake_stripe):
    user, purchase = buyer
    session_id = purchase.stripe_checkout_session_id
    refund = fake_stripe.event("charge.refunded", fake_stripe.refunded_charge(session_id))

    first = deliver(client, refund)  # nothing knows the payment intent yet: Stripe retries
    deliver(client, completed(fake_stripe, purchase))
    deliver(client, refund)

    assert_error(first, 404, "purchase_not_found")
    purchase.refresh_from_db()
    assert purchase.status in ("refund_review", "refunded")
    assert total_of(user) == 0


def test_a_dispute_puts_the_purchase_in_review(client, buyer, fake_stripe):
    user, purchase = buyer
    deliver(client, completed(fake_stripe, purchase))

    deliver(
        client,
        fake_stripe.event("charge.dispute.created", fake_stripe.dispute(purchase.stripe_checkout_session_id)),
    )

    purchase.refresh_from_db()
    assert purchase.status == "refund_review"
    assert AuditEvent.objects.filter(action="individual_purchase.disputed").exists()
