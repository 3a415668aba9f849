"""Auto top-up: a card saved by an opted-in Checkout purchase is charged off-session (a real
``stripe`` client against the local Stripe stand-in) when the pool's available credits fall
below the threshold, within the monthly cap; ``payment_intent.succeeded`` credits it once;
three declines in a row turn it off with an audit event and an e-mail to the org admins."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import (
    AuditEvent,
    AutoTopUpSettings,
    CreditGrant,
    CreditPurchase,
    OrganizationCreditPool,
    OrgBillingHistory,
)
from billing.payments.auto_topup import run_auto_topups
from billing.selectors.reconciliation import find_all_drifts
from billing.services import allocate_credits_to_user
from billing.tasks import run_auto_topups as run_auto_topups_task
from organizations.models import Organization
from tests.concurrency import run_concurrently
from tests.factories import UserFactory
from tests.fakes.stripe import sign
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.django_db

WEBHOOK = reverse("webhook-stripe")
SETTINGS = {
    "enabled": True,
    "threshold_credits": 2000,
    "amount_credits": 5000,
    "monthly_cap_usd": 200,
    "save_card_at_checkout": True,
}


def url(org_id: str) -> str:
    return reverse("org-billing-auto-topup", args=[org_id])


def deliver(client, body: str):
    return client.post(
        WEBHOOK, data=body, content_type="application/json", headers={"Stripe-Signature": sign(body)}
    )


def put(api_client, org_id: str, **changes):
    return api_client.put(url(org_id), {**SETTINGS, **changes}, format="json")


def available(org_id: str) -> int:
    return OrganizationCreditPool.objects.get(org_id=org_id).available_credits


def buy_by_card(api_client, client, team, fake_stripe) -> CreditPurchase:
    """The org admin buys 5,000 credits through Checkout and pays (both of Stripe's events)."""
    api_client.force_login(team.admin)
    response = api_client.post(
        reverse("org-billing-credits-add", args=[team.org.id]), {"credits": 5000}, format="json"
    )
    assert response.status_code == 201, response.content
    purchase = CreditPurchase.objects.get(checkout_url=response.json()["checkout_url"])
    session_id = purchase.stripe_checkout_session_id
    completed = fake_stripe.event("checkout.session.completed", fake_stripe.completed_session(session_id))
    assert deliver(client, completed).status_code == 200
    intent = fake_stripe.event("payment_intent.succeeded", fake_stripe.checkout_payment_intent(session_id))
    assert deliver(client, intent).status_code == 200
    return purchase


def drain_to(team, credits: int) -> None:
    """Allocate pool credits to the member until ``credits`` are left available."""
    allocate_credits_to_user(
        org_id=team.org.id, user=team.member, amount=available(team.org.id) - mc(credits), actor_label="test"
    )


@pytest.fixture
def armed(api_client, client, org_team, fake_stripe):
    """Opted in, card saved by one Checkout purchase, auto top-up on: below 2,000 credits buy
    5,000 ($50), at most $200 a month. The pool has 5,900 available."""
    api_client.force_login(org_team.admin)
    assert put(api_client, org_team.org.id, enabled=False).status_code == 200
    buy_by_card(api_client, client, org_team, fake_stripe)
    response = put(api_client, org_team.org.id)
    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is True
    return org_team


def topups():
    return list(CreditPurchase.objects.filter(origin="auto_topup").order_by("pk"))


def intent_event(fake_stripe, purchase, event_type: str = "payment_intent.succeeded") -> str:
    obj = fake_stripe.intent_event_object(purchase.stripe_payment_intent_id)
    if event_type == "payment_intent.payment_failed":
        obj = fake_stripe.failed_intent(purchase.stripe_payment_intent_id)
    return fake_stripe.event(event_type, obj)


# --- saving the card ---------------------------------------------------------------------------


def test_checkout_saves_the_card_only_when_the_admin_opted_in(api_client, client, org_team, fake_stripe):
    # Not opted in: an ordinary checkout, and its payment saves nothing.
    before = available(org_team.org.id)
    buy_by_card(api_client, client, org_team, fake_stripe)
    assert available(org_team.org.id) == before + mc(5000)  # credited by the session event only
    assert "setup_future_usage" not in fake_stripe.created[0]["payment_intent_data"]
    assert not AutoTopUpSettings.objects.exists()
    assert_error(put(api_client, org_team.org.id), 409, "auto_topup_payment_method_required")

    # Opted in: Checkout is asked to save the card on a new customer; the payment records both.
    assert put(api_client, org_team.org.id, enabled=False).status_code == 200
    buy_by_card(api_client, client, org_team, fake_stripe)

    sent = fake_stripe.created[1]
    assert sent["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert sent["customer_creation"] == "always"
    row = AutoTopUpSettings.objects.get()
    assert row.stripe_payment_method_id == "pm_card_visa"
    assert Organization.objects.get(pk=org_team.org.id).stripe_customer_id == "cus_test_new"
    assert AuditEvent.objects.filter(action="auto_topup.card_saved", org_id=org_team.org.id).count() == 1

    body = put(api_client, org_team.org.id).json()
    assert (body["enabled"], body["has_saved_card"]) == (True, True)

    # With a customer known, the next checkout names it.
    buy_by_card(api_client, client, org_team, fake_stripe)
    assert fake_stripe.created[2]["customer"] == "cus_test_new"
    assert "customer_creation" not in fake_stripe.created[2]


def test_enabling_without_a_saved_card_is_409_and_changes_nothing(api_client, org_team, fake_stripe):
    api_client.force_login(org_team.admin)
    before = snapshot_balances()

    error = assert_error(put(api_client, org_team.org.id), 409, "auto_topup_payment_method_required")

    assert error["details"] == {"org_id": org_team.org.id}
    assert not AutoTopUpSettings.objects.exists()
    assert snapshot_balances() == before


# --- the periodic run --------------------------------------------------------------------------


def test_below_the_threshold_one_purchase_and_one_off_session_payment_intent(armed, fake_stripe):
    drain_to(armed, 1999)
    before = snapshot_balances()["pools"]

    result = run_auto_topups_task.apply().get()

    (purchase,) = topups()
    assert result == {"started": [purchase.pk], "declined": [], "unreachable": [], "given_up": []}
    assert (purchase.status, purchase.credits, purchase.amount, purchase.purchased_by) == (
        "pending",
        mc(5000),
        Decimal("50.00"),
        None,
    )
    (sent,) = fake_stripe.intent_requests
    assert sent == {
        "amount": "5000",
        "currency": "usd",
        "customer": "cus_test_new",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "off_session": "true",
        "description": "Auto top-up: 5,000 credits",
        "metadata": {"purchase_id": str(purchase.pk), "org_id": armed.org.id, "origin": "auto_topup"},
    }
    assert fake_stripe.intent_idempotency_keys == [f"auto-topup-{purchase.pk}"]
    assert purchase.stripe_payment_intent_id in fake_stripe.intents
    # Nothing is credited before Stripe's webhook says so.
    assert snapshot_balances()["pools"] == before
    assert AuditEvent.objects.filter(action="auto_topup.started", target_id=str(purchase.pk)).exists()


def test_a_top_up_in_flight_is_not_started_twice(armed, fake_stripe):
    drain_to(armed, 100)

    run_auto_topups()
    second = run_auto_topups()

    assert second.started == [] and len(topups()) == 1
    assert len(fake_stripe.intent_requests) == 1


def test_at_or_above_the_threshold_nothing_happens(armed, fake_stripe):
    drain_to(armed, 2000)

    assert run_auto_topups().started == []
    assert topups() == [] and fake_stripe.intent_requests == []


def test_disabled_or_inactive_orgs_are_not_topped_up(api_client, armed, fake_stripe):
    drain_to(armed, 100)
    assert put(api_client, armed.org.id, enabled=False).status_code == 200

    assert run_auto_topups().started == []
    assert fake_stripe.intent_requests == []


def test_the_monthly_cap_stops_top_ups(api_client, client, armed, fake_stripe):
    assert put(api_client, armed.org.id, monthly_cap_usd=99).status_code == 200
    drain_to(armed, 100)
    (first,) = run_auto_topups().started
    assert deliver(client, intent_event(fake_stripe, CreditPurchase.objects.get(pk=first))).status_code == 200
    drain_to(armed, 100)

    assert run_auto_topups().started == []  # $50 spent, another $50 would pass $99
    assert len(topups()) == 1 and len(fake_stripe.intent_requests) == 1
    assert api_client.get(url(armed.org.id)).json()["spent_this_month_usd"] == 50.0


# --- the webhook --------------------------------------------------------------------------------


def test_the_succeeded_webhook_credits_the_top_up_once(client, armed, fake_stripe):
    drain_to(armed, 100)
    run_auto_topups()
    (purchase,) = topups()
    body = intent_event(fake_stripe, purchase)

    first, second = deliver(client, body), deliver(client, body)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["replayed"] is True
    assert available(armed.org.id) == mc(100) + mc(5000)
    purchase.refresh_from_db()
    assert purchase.status == "fulfilled" and purchase.fulfilled_at is not None
    row = OrgBillingHistory.objects.get(
        external_id=f"stripe-payment-intent-{purchase.stripe_payment_intent_id}"
    )
    assert (row.credits, row.amount, row.org_id) == (mc(5000), Decimal("50.00"), armed.org.id)
    assert AuditEvent.objects.filter(action="purchase.fulfilled", target_id=str(purchase.pk)).count() == 1
    grant = CreditGrant.objects.get(purchase=purchase)
    assert (grant.source, grant.credits, grant.history_id) == ("auto_topup", mc(5000), row.pk)
    assert find_all_drifts() == []
    # Above the threshold again: the next run buys nothing.
    assert run_auto_topups().started == []


def test_a_succeeded_intent_with_another_amount_is_refused(client, armed, fake_stripe):
    drain_to(armed, 100)
    run_auto_topups()
    (purchase,) = topups()
    obj = {**fake_stripe.intent_event_object(purchase.stripe_payment_intent_id), "amount_received": 1}

    response = deliver(client, fake_stripe.event("payment_intent.succeeded", obj))

    assert_error(response, 409, "conflict")
    assert available(armed.org.id) == mc(100)
    assert CreditPurchase.objects.get(pk=purchase.pk).status == "pending"


@pytest.mark.django_db(transaction=True)
def test_the_succeeded_webhook_delivered_concurrently_credits_once(api_client, org_team, fake_stripe):
    api_client.force_login(org_team.admin)
    assert put(api_client, org_team.org.id, enabled=False).status_code == 200
    buy_by_card(api_client, Client(), org_team, fake_stripe)
    assert put(api_client, org_team.org.id).status_code == 200
    drain_to(org_team, 100)
    run_auto_topups()
    (purchase,) = topups()
    body = intent_event(fake_stripe, purchase)

    responses = run_concurrently(lambda _i: deliver(Client(), body), 8)

    assert [r.status_code for r in responses] == [200] * 8
    assert available(org_team.org.id) == mc(100) + mc(5000)
    assert OrgBillingHistory.objects.filter(external_id__startswith="stripe-payment-intent-").count() == 1
    assert AuditEvent.objects.filter(action="purchase.fulfilled", target_id=str(purchase.pk)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_start_one_top_up(api_client, org_team, fake_stripe):
    api_client.force_login(org_team.admin)
    assert put(api_client, org_team.org.id, enabled=False).status_code == 200
    buy_by_card(api_client, Client(), org_team, fake_stripe)
    assert put(api_client, org_team.org.id).status_code == 200
    drain_to(org_team, 100)

    results = run_concurrently(lambda _i: run_auto_topups(), 6)

    assert sum(len(r.started) for r in results) == 1
    assert len(topups()) == 1 and len(fake_stripe.intent_requests) == 1


# --- failures -----------------------------------------------------------------------------------


def test_three_declines_in_a_row_turn_auto_top_up_off(
    client, armed, fake_stripe, django_capture_on_commit_callbacks
):
    drain_to(armed, 100)
    fake_stripe.declines = ["insufficient_funds"] * 3

    with django_capture_on_commit_callbacks(execute=True):
        for expected in (1, 2):
            assert len(run_auto_topups().declined) == 1
            assert AutoTopUpSettings.objects.get().consecutive_failures == expected
            assert AutoTopUpSettings.objects.get().enabled is True
            assert mail.outbox == []
        # Stripe's own webhook about a decline already counted changes no count.
        declined = fake_stripe.intent_event_object(topups()[0].stripe_payment_intent_id)
        assert (
            deliver(client, fake_stripe.event("payment_intent.payment_failed", declined)).status_code == 200
        )
        assert AutoTopUpSettings.objects.get().consecutive_failures == 2
        assert len(run_auto_topups().declined) == 1

    row = AutoTopUpSettings.objects.get()
    assert (row.enabled, row.consecutive_failures) == (False, 3)
    assert row.disabled_reason == "3 payments failed in a row; last: Your card has insufficient funds."
    assert [p.status for p in topups()] == ["failed"] * 3
    assert all(p.stripe_payment_intent_id for p in topups())
    audit = AuditEvent.objects.get(action="auto_topup.disabled")
    assert (audit.org_id, audit.metadata["failures"]) == (armed.org.id, 3)
    assert AuditEvent.objects.filter(action="auto_topup.payment_failed").count() == 3
    (message,) = mail.outbox
    assert message.to == [armed.admin.email]
    assert "Auto top-up turned off" in message.subject
    assert available(armed.org.id) == mc(100)
    # Off: the next run charges nothing.
    assert run_auto_topups().declined == [] and len(fake_stripe.intent_requests) == 3


def test_a_decline_reported_by_webhook_counts_once_and_a_success_resets_the_count(
    api_client, client, armed, fake_stripe
):
    drain_to(armed, 100)
    run_auto_topups()
    (purchase,) = topups()
    body = intent_event(fake_stripe, purchase, "payment_intent.payment_failed")

    deliver(client, body)
    deliver(
        client,
        fake_stripe.event(
            "payment_intent.payment_failed", fake_stripe.failed_intent(purchase.stripe_payment_intent_id)
        ),
    )

    assert CreditPurchase.objects.get(pk=purchase.pk).status == "failed"
    assert AutoTopUpSettings.objects.get().consecutive_failures == 1
    assert OrgBillingHistory.objects.filter(org_id=armed.org.id, status="failed").count() == 2  # per event

    (second,) = run_auto_topups().started
    assert (
        deliver(client, intent_event(fake_stripe, CreditPurchase.objects.get(pk=second))).status_code == 200
    )
    assert AutoTopUpSettings.objects.get().consecutive_failures == 0
    assert available(armed.org.id) == mc(100) + mc(5000)


def test_stripe_unreachable_keeps_the_top_up_and_the_next_run_retries_with_the_same_key(
    armed, fake_stripe, settings
):
    settings.AUTO_TOPUP_RETRY_AFTER_SECONDS = 0
    drain_to(armed, 100)
    fake_stripe.fail_next(status=500, times=2, path="/v1/payment_intents")  # the library retries once

    first = run_auto_topups()

    (purchase,) = topups()
    assert first.unreachable == [purchase.pk] and purchase.status == "pending"
    assert purchase.stripe_payment_intent_id is None
    assert AutoTopUpSettings.objects.get().consecutive_failures == 0  # not the card's fault

    second = run_auto_topups()

    assert second.started == [purchase.pk] and len(topups()) == 1
    assert set(fake_stripe.intent_idempotency_keys) == {f"auto-topup-{purchase.pk}"}
    assert len(fake_stripe.intents) == 1


def test_a_charge_that_never_reached_stripe_is_given_up_after_the_retry_window(armed, fake_stripe, settings):
    drain_to(armed, 100)
    fake_stripe.fail_next(status=500, times=2, path="/v1/payment_intents")
    (purchase,) = run_auto_topups().unreachable

    later = timezone.now() + timedelta(seconds=settings.AUTO_TOPUP_RETRY_WINDOW_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        outcome = run_auto_topups()

    assert outcome.given_up == [purchase]
    assert CreditPurchase.objects.get(pk=purchase).status == "failed"
    assert AutoTopUpSettings.objects.get().consecutive_failures == 0
    assert AuditEvent.objects.filter(action="auto_topup.given_up", target_id=str(purchase)).exists()


def test_declined_top_ups_do_not_count_against_the_cap(api_client, armed, fake_stripe):
    assert put(api_client, armed.org.id, monthly_cap_usd=50).status_code == 200
    drain_to(armed, 100)
    fake_stripe.declines = ["card_declined"]

    assert len(run_auto_topups().declined) == 1
    assert len(run_auto_topups().started) == 1  # $0 charged so far: the $50 top-up fits
    assert len(run_auto_topups().started) == 0  # in flight


# --- the API ------------------------------------------------------------------------------------


def test_settings_read_before_they_exist(api_client, org_team):
    api_client.force_login(org_team.admin)

    body = api_client.get(url(org_team.org.id)).json()

    assert body == {
        "org_id": org_team.org.id,
        "configured": False,
        "enabled": False,
        "threshold_credits": None,
        "amount_credits": None,
        "monthly_cap_usd": None,
        "save_card_at_checkout": False,
        "has_saved_card": False,
        "consecutive_failures": 0,
        "disabled_reason": "",
        "spent_this_month_usd": 0.0,
        "updated_at": None,
    }


def test_org_admin_saves_and_reads_the_settings(api_client, org_team, fake_stripe):
    api_client.force_login(org_team.admin)

    response = put(
        api_client, org_team.org.id, enabled=False, threshold_credits=1500.5, monthly_cap_usd=120.5
    )

    assert response.status_code == 200, response.content
    assert api_client.get(url(org_team.org.id)).json() == response.json()
    row = AutoTopUpSettings.objects.get()
    assert (row.threshold_credits, row.amount_credits, row.monthly_cap_usd, row.updated_by) == (
        mc("1500.5"),
        mc(5000),
        Decimal("120.50"),
        org_team.admin,
    )
    audit = AuditEvent.objects.get(action="auto_topup.updated")
    assert (audit.actor, audit.metadata["before"], audit.metadata["after"]["threshold_credits"]) == (
        org_team.admin,
        None,
        mc("1500.5"),
    )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"enabled": "true"}, "validation_error"),
        ({"enabled": 1}, "validation_error"),
        ({"threshold_credits": 0}, "validation_error"),
        ({"threshold_credits": -5}, "validation_error"),
        ({"amount_credits": "5000"}, "validation_error"),
        ({"amount_credits": 0.0001}, "validation_error"),
        ({"amount_credits": 100}, "invalid_amount"),  # $1: under the purchase minimum
        ({"amount_credits": 1000.5}, "invalid_amount"),  # half a cent
        ({"monthly_cap_usd": 10}, "invalid_amount"),  # less than one top-up
        ({"monthly_cap_usd": 10.001}, "validation_error"),
        ({"surprise": 1}, "validation_error"),
        ({"save_card_at_checkout": None}, "validation_error"),
    ],
)
def test_bad_settings_are_400_and_change_nothing(api_client, org_team, fake_stripe, changes, code):
    api_client.force_login(org_team.admin)
    assert put(api_client, org_team.org.id, enabled=False).status_code == 200
    before = api_client.get(url(org_team.org.id)).json()

    assert_error(put(api_client, org_team.org.id, **{"enabled": False, **changes}), 400, code)
    assert api_client.get(url(org_team.org.id)).json() == before


def test_a_missing_field_is_400(api_client, org_team):
    api_client.force_login(org_team.admin)
    body = {k: v for k, v in SETTINGS.items() if k != "monthly_cap_usd"}

    error = assert_error(api_client.put(url(org_team.org.id), body, format="json"), 400, "validation_error")
    assert "monthly_cap_usd" in str(error["details"])


@pytest.mark.parametrize(
    ("who", "method", "status", "code"),
    [
        ("member", "get", 403, "forbidden"),
        ("member", "put", 403, "forbidden"),
        ("outsider", "get", 404, "organization_not_found"),
        ("outsider", "put", 404, "organization_not_found"),
        ("staff", "put", 403, "forbidden"),
    ],
)
def test_only_org_admins_change_it(api_client, org_team, fake_stripe, who, method, status, code):
    user = UserFactory(is_staff=True) if who == "staff" else getattr(org_team, who)
    api_client.force_login(user)
    call = getattr(api_client, method)

    assert_error(call(url(org_team.org.id), {**SETTINGS, "enabled": False}, format="json"), status, code)
    assert not AutoTopUpSettings.objects.exists()


def test_system_admins_may_read_it(api_client, armed, staff_user):
    api_client.force_login(staff_user)

    response = api_client.get(url(armed.org.id))

    assert response.status_code == 200 and response.json()["enabled"] is True


def test_the_run_is_scheduled_every_five_minutes(settings):
    (entry,) = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"].endswith("run_auto_topups")]
    assert entry["task"] == "billing.payments.tasks.run_auto_topups"
    assert entry["schedule"].total_seconds() == 300


def test_ops_see_auto_top_up_settings_read_only_in_the_admin(admin_client, armed):
    listing = admin_client.get(reverse("admin:billing_autotopupsettings_changelist"))
    detail = admin_client.get(reverse("admin:billing_autotopupsettings_change", args=[armed.org.id]))
    change = admin_client.post(
        reverse("admin:billing_autotopupsettings_change", args=[armed.org.id]), {"enabled": "off"}
    )

    assert listing.status_code == detail.status_code == 200
    assert armed.org.id in listing.content.decode() and "pm_card_visa" in detail.content.decode()
    assert change.status_code == 403 and AutoTopUpSettings.objects.get().enabled is True


def test_a_staff_user_who_administers_the_org_may_set_it(api_client, org_team, fake_stripe):
    org_team.admin.is_staff = True
    org_team.admin.save(update_fields=["is_staff"])
    api_client.force_login(org_team.admin)

    response = api_client.put(url(org_team.org.id), {**SETTINGS, "enabled": False}, format="json")

    assert response.status_code == 200, response.content
    assert AutoTopUpSettings.objects.get().threshold_credits == mc(SETTINGS["threshold_credits"])
