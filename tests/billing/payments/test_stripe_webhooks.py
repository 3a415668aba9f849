"""POST /api/v1/webhooks/stripe: bodies signed with Stripe's real scheme and verified by
``stripe.Webhook.construct_event``; a paid checkout is fulfilled exactly once — also when the
event is redelivered, or delivered twice concurrently — and failures and refunds are recorded."""

import json
import time
from decimal import Decimal

import pytest
import stripe
from django.test import Client
from django.urls import reverse

from billing.models import (
    AuditEvent,
    CreditGrant,
    CreditPurchase,
    OrganizationCreditPool,
    OrgBillingHistory,
    WebhookEvent,
)
from billing.selectors.reconciliation import find_all_drifts
from billing.services import allocate_credits_to_user
from tests.concurrency import run_concurrently
from tests.fakes.stripe import WEBHOOK_SECRET, sign
from tests.helpers import assert_error, mc

pytestmark = pytest.mark.django_db

URL = reverse("webhook-stripe")


def deliver(client, body: str, *, signature: str | None = None):
    headers = {"Stripe-Signature": sign(body) if signature is None else signature}
    return client.post(URL, data=body, content_type="application/json", headers=headers)


def pool_total(org_id: str) -> int:
    return OrganizationCreditPool.objects.get(org_id=org_id).total_credits


@pytest.fixture
def checkout(api_client, org_team, fake_stripe):
    """An org admin opened a checkout for 5,000 credits ($50); returns (team, purchase)."""
    api_client.force_login(org_team.admin)
    response = api_client.post(
        reverse("org-billing-credits-add", args=[org_team.org.id]), {"credits": 5000}, format="json"
    )
    assert response.status_code == 201, response.content
    return org_team, CreditPurchase.objects.get()


def completed_event(fake_stripe, purchase, **kwargs) -> str:
    return fake_stripe.event(
        "checkout.session.completed",
        fake_stripe.completed_session(purchase.stripe_checkout_session_id, **kwargs),
    )


def test_our_signature_is_the_one_stripe_computes():
    body = '{"id": "evt_1"}'
    assert sign(body, timestamp=1700000000) == stripe.WebhookSignature.generate_signature_header(
        body, WEBHOOK_SECRET, timestamp=1700000000
    )


def test_a_paid_checkout_is_fulfilled_once(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)
    body = completed_event(fake_stripe, purchase)

    response = deliver(client, body)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "processed" and response.json()["replayed"] is False
    assert pool_total(team.org.id) == before + mc(5000)
    purchase.refresh_from_db()
    assert purchase.status == "fulfilled" and purchase.fulfilled_at is not None
    assert purchase.stripe_payment_intent_id == f"pi_for_{purchase.stripe_checkout_session_id}"
    row = OrgBillingHistory.objects.get(external_id=f"stripe-checkout-{purchase.stripe_checkout_session_id}")
    assert (row.event_type, row.amount, row.credits, row.org_id) == (
        "credit_purchase",
        Decimal("50.00"),
        mc(5000),
        team.org.id,
    )
    grant = CreditGrant.objects.get(purchase=purchase)
    assert (grant.source, grant.credits, grant.history_id) == ("purchase", mc(5000), row.pk)
    audit = AuditEvent.objects.get(action="purchase.fulfilled")
    assert (audit.actor, audit.org_id, audit.target_id) == (team.admin, team.org.id, str(purchase.pk))
    event = WebhookEvent.objects.get()
    assert (event.provider, event.event_type, event.status) == (
        "stripe",
        "checkout.session.completed",
        "processed",
    )
    assert event.payload == json.loads(body)


@pytest.mark.parametrize("case", ["wrong_secret", "tampered_body", "stale", "missing", "garbage"])
def test_a_bad_or_stale_signature_is_400_and_nothing_is_stored(client, checkout, fake_stripe, case):
    team, purchase = checkout
    body = completed_event(fake_stripe, purchase)
    before = pool_total(team.org.id)
    signature = {
        "wrong_secret": sign(body, secret="whsec_someone_else"),
        "tampered_body": sign(body.replace('"paid"', '"unpaid"')),
        "stale": sign(body, timestamp=int(time.time()) - 301),
        "missing": "",
        "garbage": "t=abc,v1=zzz",
    }[case]

    response = deliver(client, body, signature=signature)

    assert_error(response, 400, "invalid_signature")
    assert not WebhookEvent.objects.exists()
    assert pool_total(team.org.id) == before
    assert CreditPurchase.objects.get().status == "pending"


def test_the_same_event_twice_adds_credits_once(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)
    body = completed_event(fake_stripe, purchase)

    first, second = deliver(client, body), deliver(client, body)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["replayed"] is True
    assert pool_total(team.org.id) == before + mc(5000)
    assert OrgBillingHistory.objects.filter(event_type="credit_purchase").count() == 1
    assert WebhookEvent.objects.get().attempts == 1


def test_two_different_events_for_one_payment_add_credits_once(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)
    session = fake_stripe.completed_session(purchase.stripe_checkout_session_id)

    for event_type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        assert deliver(client, fake_stripe.event(event_type, session)).status_code == 200

    assert WebhookEvent.objects.count() == 2
    assert pool_total(team.org.id) == before + mc(5000)


def test_a_completed_but_unpaid_checkout_adds_nothing_until_paid(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)

    deliver(client, completed_event(fake_stripe, purchase, payment_status="unpaid"))
    assert pool_total(team.org.id) == before
    assert CreditPurchase.objects.get().status == "pending"

    paid = fake_stripe.completed_session(purchase.stripe_checkout_session_id)
    deliver(client, fake_stripe.event("checkout.session.async_payment_succeeded", paid))
    assert pool_total(team.org.id) == before + mc(5000)


def test_an_amount_that_does_not_match_is_refused_and_credits_nothing(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)
    session = {**fake_stripe.completed_session(purchase.stripe_checkout_session_id), "amount_total": 100}

    response = deliver(client, fake_stripe.event("checkout.session.completed", session))

    assert_error(response, 409, "conflict")
    assert pool_total(team.org.id) == before
    assert WebhookEvent.objects.get().status == "failed"
    assert CreditPurchase.objects.get().status == "pending"


def test_a_declined_card_is_recorded_and_the_purchase_stays_open(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)
    body = fake_stripe.event(
        "payment_intent.payment_failed",
        fake_stripe.failed_payment_intent(purchase.stripe_checkout_session_id),
    )

    assert deliver(client, body).status_code == 200
    assert deliver(client, body).status_code == 200

    purchase.refresh_from_db()
    assert purchase.status == "pending"
    assert purchase.failure_reason == "Your card has insufficient funds."
    (row,) = OrgBillingHistory.objects.filter(event_type="payment")
    assert (row.status, row.amount, row.org_id) == ("failed", None, team.org.id)
    assert row.metadata["decline_code"] == "insufficient_funds"
    assert AuditEvent.objects.filter(action="purchase.payment_failed").count() == 1
    assert pool_total(team.org.id) == before


def test_an_expired_checkout_cancels_the_purchase(client, checkout, fake_stripe):
    _, purchase = checkout
    body = fake_stripe.event(
        "checkout.session.expired", fake_stripe.expired_session(purchase.stripe_checkout_session_id)
    )

    assert deliver(client, body).status_code == 200

    assert CreditPurchase.objects.get().status == "canceled"


def test_a_full_refund_of_unallocated_credits_takes_them_back(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)
    deliver(client, completed_event(fake_stripe, purchase))
    refund = fake_stripe.event(
        "charge.refunded", fake_stripe.refunded_charge(purchase.stripe_checkout_session_id)
    )

    assert deliver(client, refund).status_code == 200
    assert deliver(client, refund).status_code == 200

    assert pool_total(team.org.id) == before
    purchase.refresh_from_db()
    assert (purchase.status, purchase.refunded_amount) == ("refunded", Decimal("50.00"))
    (row,) = OrgBillingHistory.objects.filter(event_type="refund")
    assert (row.amount, row.credits) == (Decimal("50.00"), mc(5000))
    assert AuditEvent.objects.filter(action="purchase.refunded").count() == 1
    grant = CreditGrant.objects.get(purchase=purchase)
    assert (grant.refunded_credits, grant.capacity) == (mc(5000), 0)
    assert find_all_drifts() == []  # the pool's total still equals its credit history and grants


def test_a_refund_of_credits_already_handed_out_is_flagged_for_ops_not_clawed_back(
    client, checkout, fake_stripe
):
    team, purchase = checkout
    deliver(client, completed_event(fake_stripe, purchase))
    # The org hands most of its pool to the member: the bought credits are no longer unallocated.
    allocate_credits_to_user(org_id=team.org.id, user=team.member, amount=mc(5500), actor_label="test")
    total = pool_total(team.org.id)

    response = deliver(
        client,
        fake_stripe.event(
            "charge.refunded", fake_stripe.refunded_charge(purchase.stripe_checkout_session_id)
        ),
    )

    assert response.status_code == 200
    assert pool_total(team.org.id) == total  # nothing taken back silently
    purchase.refresh_from_db()
    assert purchase.status == "refund_review"
    flagged = AuditEvent.objects.get(action="purchase.refund_needs_review")
    assert flagged.metadata["reason"] == "credits already allocated or used"
    assert flagged.metadata["pool_available"] == mc(400)  # 6,000 total - 5,600 allocated
    assert OrgBillingHistory.objects.get(event_type="refund").credits is None


def test_a_partial_refund_is_recorded_and_flagged(client, checkout, fake_stripe):
    team, purchase = checkout
    deliver(client, completed_event(fake_stripe, purchase))
    total = pool_total(team.org.id)

    charge = fake_stripe.refunded_charge(purchase.stripe_checkout_session_id, amount_refunded=1000)
    assert deliver(client, fake_stripe.event("charge.refunded", charge)).status_code == 200

    assert pool_total(team.org.id) == total
    purchase.refresh_from_db()
    assert (purchase.status, purchase.refunded_amount) == ("refund_review", Decimal("10.00"))
    assert OrgBillingHistory.objects.get(event_type="refund").amount == Decimal("10.00")


def test_events_about_other_payments_are_stored_and_ignored(client, fake_stripe):
    foreign = {"id": "cs_other", "object": "checkout.session", "payment_status": "paid", "metadata": {}}

    response = deliver(client, fake_stripe.event("checkout.session.completed", foreign))

    assert response.status_code == 200 and response.json()["status"] == "ignored"
    other_type = deliver(client, fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert other_type.json()["status"] == "ignored"
    assert WebhookEvent.objects.count() == 2


def test_a_signed_body_without_id_is_400_and_nothing_is_stored(client, fake_stripe):
    body = json.dumps({"object": "event", "type": "checkout.session.completed"})

    assert_error(deliver(client, body), 400, "malformed_webhook")
    assert not WebhookEvent.objects.exists()


def test_without_a_webhook_secret_the_endpoint_is_503(client, fake_stripe, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""

    assert_error(deliver(client, fake_stripe.event("customer.created", {})), 503, "payments_not_configured")
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_concurrently_adds_credits_once(api_client, org_team, fake_stripe):
    api_client.force_login(org_team.admin)
    response = api_client.post(
        reverse("org-billing-credits-add", args=[org_team.org.id]), {"credits": 5000}, format="json"
    )
    assert response.status_code == 201, response.content
    purchase = CreditPurchase.objects.get()
    before = pool_total(org_team.org.id)
    body = completed_event(fake_stripe, purchase)
    signature = sign(body)

    responses = run_concurrently(lambda _i: deliver(Client(), body, signature=signature), 8)

    assert [r.status_code for r in responses] == [200] * 8, responses
    assert sorted(r.json()["replayed"] for r in responses) == [False] + [True] * 7
    assert pool_total(org_team.org.id) == before + mc(5000)
    assert OrgBillingHistory.objects.filter(event_type="credit_purchase").count() == 1
    assert AuditEvent.objects.filter(action="purchase.fulfilled").count() == 1
    assert WebhookEvent.objects.get().attempts == 1


@pytest.mark.django_db(transaction=True)
def test_two_events_for_one_payment_concurrently_add_credits_once(api_client, org_team, fake_stripe):
    api_client.force_login(org_team.admin)
    api_client.post(
        reverse("org-billing-credits-add", args=[org_team.org.id]), {"credits": 5000}, format="json"
    )
    purchase = CreditPurchase.objects.get()
    before = pool_total(org_team.org.id)
    session = fake_stripe.completed_session(purchase.stripe_checkout_session_id)
    bodies = [
        fake_stripe.event(kind, session)
        for kind in ["checkout.session.completed", "checkout.session.async_payment_succeeded"] * 3
    ]

    responses = run_concurrently(lambda i: deliver(Client(), bodies[i]), len(bodies))

    assert [r.status_code for r in responses] == [200] * len(bodies), [r.content for r in responses]
    assert pool_total(org_team.org.id) == before + mc(5000)
    assert WebhookEvent.objects.filter(status="processed").count() == len(bodies)


def refund_event(fake_stripe, purchase, **kwargs) -> str:
    return fake_stripe.event(
        "charge.refunded", fake_stripe.refunded_charge(purchase.stripe_checkout_session_id, **kwargs)
    )


def test_a_refund_before_the_checkout_event_is_retried_and_the_payment_is_never_credited(
    client, checkout, fake_stripe
):
    team, purchase = checkout
    before = pool_total(team.org.id)
    refund = refund_event(fake_stripe, purchase)  # Stripe's charge: no metadata of ours

    early = deliver(client, refund)

    assert_error(early, 404, "purchase_not_found")
    assert WebhookEvent.objects.get(event_type="charge.refunded").status == "failed"

    assert deliver(client, completed_event(fake_stripe, purchase)).status_code == 200
    purchase.refresh_from_db()
    assert purchase.status == "refund_review"
    assert purchase.stripe_payment_intent_id == f"pi_for_{purchase.stripe_checkout_session_id}"
    assert pool_total(team.org.id) == before
    assert not OrgBillingHistory.objects.filter(event_type="credit_purchase").exists()

    again = deliver(client, refund)  # Stripe's redelivery

    assert again.status_code == 200 and again.json()["status"] == "processed"
    purchase.refresh_from_db()
    assert (purchase.status, purchase.refunded_amount) == ("refunded", Decimal("50.00"))
    assert OrgBillingHistory.objects.get(event_type="refund").credits is None
    assert pool_total(team.org.id) == before
    assert find_all_drifts() == []


def test_a_refund_is_matched_through_a_stored_checkout_event_not_yet_processed(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)
    session = {**fake_stripe.completed_session(purchase.stripe_checkout_session_id), "amount_total": 100}
    assert deliver(client, fake_stripe.event("checkout.session.completed", session)).status_code == 409

    response = deliver(client, refund_event(fake_stripe, purchase))

    assert response.status_code == 200 and response.json()["status"] == "processed"
    purchase.refresh_from_db()
    assert purchase.status == "refunded"
    assert pool_total(team.org.id) == before


def test_a_refund_of_a_payment_that_is_not_ours_is_refused_for_redelivery(client, fake_stripe):
    charge = {"id": "ch_other", "object": "charge", "payment_intent": "pi_other", "metadata": {}}

    response = deliver(client, fake_stripe.event("charge.refunded", charge))

    assert_error(response, 404, "purchase_not_found")
    assert WebhookEvent.objects.get().status == "failed"


def test_a_paid_purchase_of_an_org_deactivated_meanwhile_is_still_credited(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)
    type(team.org).objects.filter(pk=team.org.pk).update(is_active=False)

    response = deliver(client, completed_event(fake_stripe, purchase))

    assert response.status_code == 200 and response.json()["status"] == "processed"
    assert pool_total(team.org.id) == before + mc(5000)
    assert CreditPurchase.objects.get().status == "fulfilled"
    assert AuditEvent.objects.get(action="purchase.fulfilled").metadata["org_active"] is False


def test_a_chargeback_sends_the_purchase_to_review_and_takes_nothing_back(client, checkout, fake_stripe):
    team, purchase = checkout
    deliver(client, completed_event(fake_stripe, purchase))
    total = pool_total(team.org.id)

    response = deliver(
        client,
        fake_stripe.event("charge.dispute.created", fake_stripe.dispute(purchase.stripe_checkout_session_id)),
    )

    assert response.status_code == 200 and response.json()["status"] == "processed"
    purchase.refresh_from_db()
    assert purchase.status == "refund_review"
    audit = AuditEvent.objects.get(action="purchase.disputed")
    assert (audit.org_id, audit.metadata["reason"], audit.metadata["from"]) == (
        team.org.id,
        "fraudulent",
        "fulfilled",
    )
    assert pool_total(team.org.id) == total


def test_a_chargeback_before_the_checkout_event_blocks_the_credits(client, checkout, fake_stripe):
    team, purchase = checkout
    before = pool_total(team.org.id)
    dispute = fake_stripe.event(
        "charge.dispute.created", fake_stripe.dispute(purchase.stripe_checkout_session_id)
    )
    assert_error(deliver(client, dispute), 404, "purchase_not_found")

    deliver(client, completed_event(fake_stripe, purchase))
    assert deliver(client, dispute).status_code == 200

    purchase.refresh_from_db()
    assert purchase.status == "refund_review"
    assert pool_total(team.org.id) == before
