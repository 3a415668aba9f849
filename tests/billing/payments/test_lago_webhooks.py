"""POST /api/v1/webhooks/lago: signatures (jwt with Lago's public key, hmac), stored raw then
processed once — also when replayed, and when the same event arrives concurrently."""

import json
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from billing.errors import BillingBackendUnavailable
from billing.models import OrganizationCreditPool, OrganizationSubscription, OrgBillingHistory, WebhookEvent
from billing.services.subscriptions import create_subscription
from tests.concurrency import run_concurrently
from tests.factories import OrganizationFactory, UserFactory
from tests.fakes.lago import _rsa_pair
from tests.helpers import assert_error, mc

pytestmark = pytest.mark.django_db

URL = reverse("webhook-lago")


def post(
    client, body: str, *, signature: str | None, algorithm: str | None = "jwt", unique_key: str | None = None
):
    headers = {}
    if signature is not None:
        headers["X-Lago-Signature"] = signature
    if algorithm is not None:
        headers["X-Lago-Signature-Algorithm"] = algorithm
    if unique_key is not None:
        headers["X-Lago-Unique-Key"] = unique_key
    return client.post(URL, data=body, content_type="application/json", headers=headers)


def invoice_event(fake_lago, org_id: str, *, webhook_type="invoice.created", **invoice_fields) -> str:
    invoice = fake_lago.invoice(org_id, number="WH-1", cents=4900, **invoice_fields)
    return json.dumps({"webhook_type": webhook_type, "object_type": "invoice", "invoice": invoice})


@pytest.fixture
def org(fake_lago):
    return OrganizationFactory(id="hook-org")


def test_jwt_signed_invoice_created_lands_in_history_once(client, fake_lago, org):
    body = invoice_event(fake_lago, org.id)

    response = post(client, body, signature=fake_lago.jwt_signature(body), unique_key="uk-1")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "received": True,
        "event_id": "uk-1",
        "type": "invoice.created",
        "status": "processed",
        "replayed": False,
    }
    event = WebhookEvent.objects.get()
    assert (event.provider, event.event_type, event.status, event.attempts) == (
        "lago",
        "invoice.created",
        "processed",
        1,
    )
    assert event.payload == json.loads(body)
    invoice = json.loads(body)["invoice"]
    row = OrgBillingHistory.objects.get(org_id=org.id)
    assert row.external_id == f"lago-invoice-{invoice['lago_id']}"
    assert (row.event_type, row.amount, row.status, row.description) == (
        "invoice",
        Decimal("49.00"),
        "finalized",
        "Invoice WH-1",
    )


def test_hmac_signed_webhook_is_accepted(client, fake_lago, org, settings):
    settings.LAGO_WEBHOOK_SIGNATURE = "hmac"
    body = invoice_event(fake_lago, org.id)

    response = post(
        client, body, signature=fake_lago.hmac_signature(body.encode(), "lago-hmac-token"), algorithm="hmac"
    )

    assert response.status_code == 200, response.content
    assert OrgBillingHistory.objects.filter(org_id=org.id, event_type="invoice").count() == 1
    # Without X-Lago-Unique-Key the event is identified by its body.
    assert WebhookEvent.objects.get().event_id.startswith("sha256:")


def test_the_public_key_is_fetched_once_and_cached(client, fake_lago, org):
    for n in range(3):
        body = invoice_event(fake_lago, org.id)
        assert (
            post(client, body, signature=fake_lago.jwt_signature(body), unique_key=f"k{n}").status_code == 200
        )

    assert len(fake_lago.requests("GET", "/api/v1/webhooks/json_public_key")) == 1


@pytest.mark.parametrize(
    "case",
    [
        "other_key",
        "other_body",
        "wrong_issuer",
        "garbage",
        "missing",
        "hmac_wrong_secret",
        "unknown_algorithm",
    ],
)
def test_a_bad_signature_is_400_and_nothing_is_stored(client, fake_lago, org, case):
    body = invoice_event(fake_lago, org.id)
    other_private, _ = _rsa_pair()
    signature, algorithm = {
        "other_key": (fake_lago.jwt_signature(body, private_key=other_private), "jwt"),
        "other_body": (fake_lago.jwt_signature(body.replace("WH-1", "WH-2")), "jwt"),
        "wrong_issuer": (fake_lago.jwt_signature(body, issuer="https://evil.example"), "jwt"),
        "garbage": ("not-a-jwt", "jwt"),
        "missing": (None, "jwt"),
        "hmac_wrong_secret": (fake_lago.hmac_signature(body.encode(), "another-secret"), "hmac"),
        "unknown_algorithm": (fake_lago.jwt_signature(body), "md5"),
    }[case]

    response = post(client, body, signature=signature, algorithm=algorithm, unique_key="bad-1")

    assert_error(response, 400, "invalid_signature")
    assert not WebhookEvent.objects.exists()
    assert not OrgBillingHistory.objects.exists()


def test_a_signed_body_that_is_not_an_event_is_400_and_nothing_is_stored(client, fake_lago):
    body = json.dumps(["not", "an", "object"])

    assert_error(post(client, body, signature=fake_lago.jwt_signature(body)), 400, "malformed_webhook")
    assert not WebhookEvent.objects.exists()


def test_lago_unreachable_for_its_key_is_503_so_lago_retries(client, fake_lago, org, settings):
    settings.LAGO_API_URL = "http://127.0.0.1:9/"
    body = invoice_event(fake_lago, org.id)

    assert_error(
        post(client, body, signature=fake_lago.jwt_signature(body)), 503, "billing_backend_unavailable"
    )
    assert not WebhookEvent.objects.exists()


def test_a_replayed_event_is_acknowledged_and_changes_nothing(client, fake_lago, org):
    body = invoice_event(
        fake_lago, org.id, payment_status="succeeded", webhook_type="invoice.payment_status_updated"
    )
    signature = fake_lago.jwt_signature(body)
    assert post(client, body, signature=signature, unique_key="uk-replay").status_code == 200
    history = sorted(OrgBillingHistory.objects.values_list("external_id", "event_type", "amount"))

    again = post(client, body, signature=signature, unique_key="uk-replay")

    assert again.status_code == 200
    assert again.json()["replayed"] is True and again.json()["status"] == "processed"
    assert sorted(OrgBillingHistory.objects.values_list("external_id", "event_type", "amount")) == history
    assert [h[1] for h in history] == ["invoice", "payment"]
    assert WebhookEvent.objects.get().attempts == 1


def test_the_same_invoice_under_another_unique_key_is_still_one_row(client, fake_lago, org):
    body = invoice_event(fake_lago, org.id)
    for key in ("uk-a", "uk-b"):
        assert post(client, body, signature=fake_lago.jwt_signature(body), unique_key=key).status_code == 200

    assert WebhookEvent.objects.count() == 2
    assert OrgBillingHistory.objects.filter(org_id=org.id).count() == 1


def test_payment_status_updates_land_once_per_outcome(client, fake_lago, org):
    invoice = fake_lago.invoice(org.id, number="PAY-1", cents=1900, payment_status="failed")
    for n, status in enumerate(["failed", "succeeded", "succeeded"]):
        body = json.dumps(
            {
                "webhook_type": "invoice.payment_status_updated",
                "object_type": "invoice",
                "invoice": {**invoice, "payment_status": status},
            }
        )
        assert (
            post(client, body, signature=fake_lago.jwt_signature(body), unique_key=f"pay-{n}").status_code
            == 200
        )

    payments = OrgBillingHistory.objects.filter(org_id=org.id, event_type="payment").order_by("id")
    assert [(p.status, p.amount) for p in payments] == [("failed", None), ("succeeded", Decimal("19.00"))]
    assert OrgBillingHistory.objects.filter(org_id=org.id, event_type="invoice").count() == 1


def test_subscription_started_completes_a_pending_subscription_and_grants_its_credits(client, fake_lago):
    owner = UserFactory()
    fake_lago.fail_next("/api/v1/subscriptions", "POST", status=500)
    with pytest.raises(BillingBackendUnavailable):
        create_subscription(org_id="pend-org", plan_code="starter", owner=owner, initial_credits=mc(40))
    sub = OrganizationSubscription.objects.get(org_id="pend-org")
    payload = fake_lago.subscription_payload(
        org_id="pend-org", external_id=sub.lago_external_id, plan_code="starter"
    )
    body = json.dumps(
        {"webhook_type": "subscription.started", "object_type": "subscription", "subscription": payload}
    )

    for _ in range(2):
        assert (
            post(client, body, signature=fake_lago.jwt_signature(body), unique_key="started-1").status_code
            == 200
        )

    sub.refresh_from_db()
    assert (sub.status, sub.lago_subscription_id) == ("active", payload["lago_id"])
    assert OrganizationCreditPool.objects.get(org_id="pend-org").total_credits == mc(40)
    assert OrgBillingHistory.objects.filter(external_id=f"subscription-{sub.pk}-started").count() == 1


def test_subscription_started_for_a_live_subscription_adds_nothing_twice(client, fake_lago):
    change = create_subscription(org_id="live-org", plan_code="starter", owner=UserFactory())
    payload = fake_lago.subscriptions[change.subscription.lago_external_id]
    body = json.dumps(
        {"webhook_type": "subscription.started", "object_type": "subscription", "subscription": payload}
    )
    before = OrgBillingHistory.objects.filter(org_id="live-org").count()

    assert post(client, body, signature=fake_lago.jwt_signature(body), unique_key="s-1").status_code == 200

    # Our own activation already wrote the start under the same key.
    assert OrgBillingHistory.objects.filter(org_id="live-org").count() == before


def test_subscription_terminated_in_lago_terminates_ours_once(client, fake_lago):
    change = create_subscription(org_id="term-org", plan_code="professional", owner=UserFactory())
    payload = {
        **fake_lago.subscriptions[change.subscription.lago_external_id],
        "status": "terminated",
        "terminated_at": "2026-02-01T00:00:00Z",
    }
    body = json.dumps(
        {"webhook_type": "subscription.terminated", "object_type": "subscription", "subscription": payload}
    )

    for key in ("t-1", "t-1", "t-2"):
        assert post(client, body, signature=fake_lago.jwt_signature(body), unique_key=key).status_code == 200

    sub = OrganizationSubscription.objects.get(pk=change.subscription.pk)
    assert sub.status == "terminated"
    assert sub.canceled_at.isoformat() == "2026-02-01T00:00:00+00:00"
    assert OrgBillingHistory.objects.filter(external_id=f"subscription-{sub.pk}-terminated").count() == 1


def test_other_event_types_are_stored_and_ignored(client, fake_lago, org):
    body = json.dumps({"webhook_type": "customer.created", "object_type": "customer", "customer": {}})

    response = post(client, body, signature=fake_lago.jwt_signature(body), unique_key="other-1")

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert WebhookEvent.objects.get().status == "ignored"
    assert not OrgBillingHistory.objects.exists()


def test_an_event_for_an_unknown_org_is_stored_failed_and_processed_on_redelivery(client, fake_lago):
    body = invoice_event(fake_lago, "late-org")
    signature = fake_lago.jwt_signature(body)

    assert_error(post(client, body, signature=signature, unique_key="late-1"), 404, "organization_not_found")
    event = WebhookEvent.objects.get()
    assert event.status == "failed" and "organization_not_found" in event.error

    OrganizationFactory(id="late-org")
    assert post(client, body, signature=signature, unique_key="late-1").status_code == 200

    event.refresh_from_db()
    assert (event.status, event.attempts, event.error) == ("processed", 2, "")
    assert OrgBillingHistory.objects.filter(org_id="late-org").count() == 1


def test_get_is_not_allowed(client):
    assert client.get(URL).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_concurrently_is_processed_once(fake_lago):
    OrganizationFactory(id="race-org")
    body = invoice_event(
        fake_lago, "race-org", payment_status="succeeded", webhook_type="invoice.payment_status_updated"
    )
    signature = fake_lago.jwt_signature(body)

    responses = run_concurrently(lambda _i: post(Client(), body, signature=signature, unique_key="race-1"), 8)

    assert [r.status_code for r in responses] == [200] * 8, responses
    assert sorted(r.json()["replayed"] for r in responses) == [False] + [True] * 7
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 1)
    assert sorted(
        OrgBillingHistory.objects.filter(org_id="race-org").values_list("event_type", flat=True)
    ) == [
        "invoice",
        "payment",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_same_invoice_under_different_keys_concurrently_is_one_row(fake_lago):
    OrganizationFactory(id="race2-org")
    body = invoice_event(fake_lago, "race2-org")
    signature = fake_lago.jwt_signature(body)

    responses = run_concurrently(lambda i: post(Client(), body, signature=signature, unique_key=f"k-{i}"), 6)

    assert [r.status_code for r in responses] == [200] * 6, [r.content for r in responses]
    assert WebhookEvent.objects.filter(status="processed").count() == 6
    assert OrgBillingHistory.objects.filter(org_id="race2-org").count() == 1


def test_an_older_invoice_state_arriving_late_does_not_overwrite_the_newer_one(client, fake_lago, org):
    invoice = fake_lago.invoice(org.id, number="ORD-1", cents=4900)
    newer = {
        **invoice,
        "status": "voided",
        "voided_at": "2026-02-02T00:00:00Z",
        "updated_at": "2026-02-02T00:00:00Z",
    }
    older = {**invoice, "status": "finalized", "updated_at": "2026-01-31T00:00:05Z"}
    for n, state in enumerate([newer, older, older]):  # the last one: a replay under a new key
        body = json.dumps({"webhook_type": "invoice.created", "object_type": "invoice", "invoice": state})
        response = post(client, body, signature=fake_lago.jwt_signature(body), unique_key=f"ord-{n}")
        assert response.status_code == 200, response.content

    row = OrgBillingHistory.objects.get(external_id=f"lago-invoice-{invoice['lago_id']}")
    assert (row.status, row.metadata["voided_at"], row.metadata["updated_at"]) == (
        "voided",
        "2026-02-02T00:00:00Z",
        "2026-02-02T00:00:00Z",
    )


def test_a_newer_invoice_state_is_mirrored(client, fake_lago, org):
    invoice = fake_lago.invoice(org.id, number="ORD-2", cents=4900)
    later = {**invoice, "status": "voided", "updated_at": "2026-02-03T00:00:00Z"}
    for n, state in enumerate([invoice, later]):
        body = json.dumps({"webhook_type": "invoice.created", "object_type": "invoice", "invoice": state})
        assert (
            post(client, body, signature=fake_lago.jwt_signature(body), unique_key=f"new-{n}").status_code
            == 200
        )

    assert OrgBillingHistory.objects.get(external_id=f"lago-invoice-{invoice['lago_id']}").status == "voided"


@pytest.mark.parametrize(("pinned", "claimed"), [("jwt", "hmac"), ("hmac", "jwt")])
def test_the_algorithm_not_pinned_is_refused_even_when_correctly_signed(
    client, fake_lago, org, settings, pinned, claimed
):
    settings.LAGO_WEBHOOK_SIGNATURE = pinned
    body = invoice_event(fake_lago, org.id)
    signature = (
        fake_lago.jwt_signature(body)
        if claimed == "jwt"
        else fake_lago.hmac_signature(body.encode(), "lago-hmac-token")
    )

    response = post(client, body, signature=signature, algorithm=claimed, unique_key="pin-1")

    assert assert_error(response, 400, "invalid_signature")["details"]["expected"] == pinned
    assert not WebhookEvent.objects.exists()
    # Without the header, the pinned algorithm is used.
    settings.LAGO_WEBHOOK_SIGNATURE = claimed
    assert post(client, body, signature=signature, algorithm=None, unique_key="pin-2").status_code == 200
