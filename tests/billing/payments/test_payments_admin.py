"""Ops see webhook events and card purchases in the admin, read-only."""

import json

import pytest
from django.urls import reverse

from billing.models import CreditPurchase
from billing.payments.webhook_events import receive_webhook
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    org = OrganizationFactory(id="admin-pay-org")
    purchase = CreditPurchase.objects.create(
        org=org, credits=1_000_000, amount="10.00", status=CreditPurchase.Status.REFUND_REVIEW
    )
    outcome = receive_webhook(
        provider="stripe",
        event_id="evt_admin_1",
        event_type="customer.created",
        payload={"id": "evt_admin_1"},
    )
    return purchase, outcome.event


def test_webhook_events_and_purchases_are_listed_and_viewable(admin_client, rows):
    purchase, event = rows

    events = admin_client.get(reverse("admin:billing_webhookevent_changelist"))
    purchases = admin_client.get(reverse("admin:billing_creditpurchase_changelist") + "?status=refund_review")
    detail = admin_client.get(reverse("admin:billing_webhookevent_change", args=[event.pk]))

    assert events.status_code == purchases.status_code == detail.status_code == 200
    assert "evt_admin_1" in events.content.decode()
    assert (
        f"purchase #{purchase.pk}" in purchases.content.decode()
        or str(purchase.pk) in purchases.content.decode()
    )
    assert "customer.created" in detail.content.decode()


def test_webhook_events_cannot_be_added_changed_or_deleted(admin_client, rows):
    _, event = rows

    assert admin_client.get(reverse("admin:billing_webhookevent_add")).status_code == 403
    changed = admin_client.post(
        reverse("admin:billing_webhookevent_change", args=[event.pk]), {"status": "received"}
    )
    assert changed.status_code == 403
    assert (
        admin_client.post(
            reverse("admin:billing_webhookevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    event.refresh_from_db()
    assert event.status == "ignored" and json.dumps(event.payload) == '{"id": "evt_admin_1"}'
