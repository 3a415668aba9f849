"""Deeply nested JSON is a 400 in the error shape wherever a body is parsed: the REST API's
parser, the gateway's request parser and both webhooks (signed bodies), never a 500 from a
``RecursionError`` (issue 11 §5)."""

import base64
import hashlib
import hmac

import pytest
from django.urls import reverse

from billing.errors import MalformedRequest
from billing.gateway.metering import parse_json_object
from billing.models import WebhookEvent
from tests.fakes.stripe import WEBHOOK_SECRET, sign
from tests.helpers import assert_error

DEPTH = 100_000
NESTED = "[" * DEPTH + "]" * DEPTH


def test_the_gateway_parser_refuses_deep_nesting_as_malformed():
    with pytest.raises(MalformedRequest):
        parse_json_object(f'{{"model": "gpt-4o", "messages": {NESTED}}}'.encode())


@pytest.mark.django_db
def test_a_signed_deeply_nested_stripe_event_is_400(client, settings):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = f'{{"id": "evt_deep", "type": "checkout.session.completed", "data": {NESTED}}}'

    response = client.post(
        reverse("webhook-stripe"),
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign(body)},
    )

    assert_error(response, 400, "malformed_webhook")
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_signed_deeply_nested_lago_event_is_400(client, settings):
    settings.LAGO_WEBHOOK_SIGNATURE = "hmac"
    settings.LAGO_WEBHOOK_HMAC_SECRET = "lago-hmac-token"
    body = f'{{"webhook_type": "invoice.created", "invoice": {NESTED}}}'.encode()
    signature = base64.b64encode(hmac.new(b"lago-hmac-token", body, hashlib.sha256).digest()).decode()

    response = client.post(
        reverse("webhook-lago"),
        data=body,
        content_type="application/json",
        headers={"X-Lago-Signature": signature, "X-Lago-Signature-Algorithm": "hmac"},
    )

    assert_error(response, 400, "malformed_webhook")
    assert not WebhookEvent.objects.exists()
