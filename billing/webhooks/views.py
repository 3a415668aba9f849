"""The webhook endpoints. Plain Django views: no session, no CSRF, no API throttles (the caller
is Lago or Stripe, authenticated by the signature over the raw body).

Answers: 200 ``{"received": true, ...}`` once stored and processed (also for a redelivery);
400 for a bad signature or body (nothing stored); 503 when the endpoint is not configured or
Lago's key cannot be fetched (the provider retries); a refusal while processing is answered with
its own status so the provider delivers the event again later (it is stored as ``failed``).
Storing and processing the event is the service ``billing.payments.webhook_events``.
"""

import hashlib
import json
from typing import Any

import stripe
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.errors import InvalidWebhookSignature, MalformedWebhook, PaymentsNotConfigured
from billing.models import WebhookEvent
from billing.payments.webhook_events import WebhookOutcome, receive_webhook
from billing.webhooks.signatures import verify_lago_signature
from orgbilling.errors import ApplicationError

MAX_BODY_BYTES = 2 * 1024 * 1024


def _error(exc: ApplicationError) -> JsonResponse:
    return JsonResponse(exc.as_dict(), status=exc.status_code)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: not an event either
        raise MalformedWebhook("The body is not JSON.") from None
    if not isinstance(payload, dict):
        raise MalformedWebhook("The body is not a JSON object.")
    return payload


def _answer(outcome: WebhookOutcome) -> JsonResponse:
    if outcome.error is not None:
        return _error(outcome.error)
    event = outcome.event
    return JsonResponse(
        {
            "received": True,
            "event_id": event.event_id,
            "type": event.event_type,
            "status": event.status,
            "replayed": outcome.replayed,
        }
    )


@csrf_exempt
@require_POST
def lago_webhook(request: HttpRequest) -> JsonResponse:
    try:
        body = request.body
        if len(body) > MAX_BODY_BYTES:
            raise MalformedWebhook("The body is too large.")
        verify_lago_signature(
            body=body,
            signature=request.headers.get("X-Lago-Signature"),
            algorithm=request.headers.get("X-Lago-Signature-Algorithm"),
        )
        payload = _json_object(body)
        event_type = payload.get("webhook_type")
        if not isinstance(event_type, str) or not event_type:
            raise MalformedWebhook("The event has no webhook_type.")
        # Lago's idempotency key; an event without one is identified by its exact body.
        event_id = request.headers.get("X-Lago-Unique-Key") or f"sha256:{hashlib.sha256(body).hexdigest()}"
        outcome = receive_webhook(
            provider=WebhookEvent.Provider.LAGO,
            event_id=event_id[:255],
            event_type=event_type,
            payload=payload,
        )
    except ApplicationError as exc:
        return _error(exc)
    return _answer(outcome)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        if not settings.STRIPE_WEBHOOK_SECRET:
            raise PaymentsNotConfigured("The Stripe webhook secret is not configured.")
        body = request.body
        if len(body) > MAX_BODY_BYTES:
            raise MalformedWebhook("The body is too large.")
        try:
            stripe.Webhook.construct_event(
                body,
                request.headers.get("Stripe-Signature"),
                settings.STRIPE_WEBHOOK_SECRET,
                tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
            )
        except stripe.SignatureVerificationError:
            raise InvalidWebhookSignature(details={"provider": "stripe"}) from None
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedWebhook("The body is not JSON.") from None
        payload = _json_object(body)
        event_id, event_type = payload.get("id"), payload.get("type")
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
            raise MalformedWebhook("The event has no id or type.")
        outcome = receive_webhook(
            provider=WebhookEvent.Provider.STRIPE,
            event_id=event_id[:255],
            event_type=event_type,
            payload=payload,
        )
    except ApplicationError as exc:
        return _error(exc)
    return _answer(outcome)
