"""Store a verified webhook, then process it exactly once (the service behind
``billing.webhooks.views``, which verifies the signature and reads the event), and prune old ones.

``store_webhook_event`` inserts the raw event in its own transaction (the unique
(provider, event id) constraint makes a redelivery or a concurrent duplicate the same row).
``process_webhook_event`` locks that row and runs the handler for its type in the same
transaction, so the event is marked ``processed`` together with what it changed; an event
already ``processed``/``ignored`` is a no-op. A handler that refuses (an ``ApplicationError``)
leaves the event ``failed`` with the reason, and a redelivery tries again.
Handlers never call out over the network (they run with the event row locked).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import CreditPurchase, WebhookEvent
from billing.payments import individual_purchases, lago_events, purchases
from orgbilling.errors import ApplicationError, ValidationFailed
from orgbilling.observability.metrics import count_webhook_failure

logger = logging.getLogger(__name__)

# A handler gets the event's payload and id; it returns False when the event is not about
# anything of ours (stored as ``ignored``).
Handler = Callable[[dict[str, Any], str], bool]

DONE = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED)


def _object(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    value: Any = payload
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, dict):
        raise ValidationFailed("The event carries no object.", details={"path": ".".join(path)})
    return value


LAGO_HANDLERS: dict[str, Handler] = {
    "invoice.created": lambda p, _id: bool(lago_events.record_lago_invoice(invoice=_object(p, "invoice"))),
    "invoice.payment_status_updated": lambda p, _id: bool(
        lago_events.record_lago_invoice(invoice=_object(p, "invoice"))
    ),
    "subscription.started": lambda p, _id: (
        lago_events.record_lago_subscription_started(subscription=_object(p, "subscription")) or True
    ),
    "subscription.terminated": lambda p, _id: (
        lago_events.record_lago_subscription_terminated(subscription=_object(p, "subscription")) or True
    ),
}


def _session(payload: dict[str, Any]) -> dict[str, Any]:
    return _object(payload, "data", "object")


def _fulfil_session(payload: dict[str, Any], _event_id: str) -> bool:
    session = _session(payload)
    return purchases.fulfil_checkout_session(session=session) or (
        individual_purchases.fulfil_individual_checkout_session(session=session)
    )


def _close_session(status: str, reason: str) -> Handler:
    def close(payload: dict[str, Any], _event_id: str) -> bool:
        session = _session(payload)
        return purchases.close_checkout_session(session=session, status=status, reason=reason) or (
            individual_purchases.close_individual_checkout_session(
                session=session, status=status, reason=reason
            )
        )

    return close


STRIPE_HANDLERS: dict[str, Handler] = {
    # An individual purchase's events carry no org purchase reference: the org handler answers
    # False and the individual one takes them (billing.payments.individual_purchases).
    "checkout.session.completed": _fulfil_session,
    "checkout.session.async_payment_succeeded": _fulfil_session,
    "checkout.session.async_payment_failed": _close_session(
        CreditPurchase.Status.FAILED, "the delayed payment failed"
    ),
    "checkout.session.expired": _close_session(CreditPurchase.Status.CANCELED, "the checkout expired unpaid"),
    "payment_intent.payment_failed": lambda p, event_id: purchases.record_payment_failed(
        payment_intent=_object(p, "data", "object"), event_id=event_id
    ),
    "payment_intent.succeeded": lambda p, _id: purchases.record_payment_succeeded(
        payment_intent=_object(p, "data", "object")
    ),
    # Individual purchases are looked up first: they are found by their payment intent (or
    # their stored checkout event), and anything else is the organization handlers' as before.
    "charge.refunded": lambda p, _id: (
        individual_purchases.record_individual_charge_refunded(charge=_session(p))
        or purchases.record_charge_refunded(charge=_session(p))
    ),
    "charge.dispute.created": lambda p, _id: (
        individual_purchases.record_individual_dispute(dispute=_session(p))
        or purchases.record_dispute_opened(dispute=_session(p))
    ),
}

HANDLERS: dict[str, dict[str, Handler]] = {
    WebhookEvent.Provider.LAGO: LAGO_HANDLERS,
    WebhookEvent.Provider.STRIPE: STRIPE_HANDLERS,
}


@dataclass(frozen=True)
class WebhookOutcome:
    event: WebhookEvent
    replayed: bool  # the event had been received before
    error: ApplicationError | None = None


def store_webhook_event(
    *, provider: str, event_id: str, event_type: str, payload: dict[str, Any]
) -> tuple[WebhookEvent, bool]:
    """Insert the raw event, or find it when it was received before. Returns (event, created)."""
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                provider=provider, event_id=event_id, event_type=event_type[:100], payload=payload
            )
        return event, True
    except IntegrityError:
        # A redelivery, or the same event arriving concurrently: its row is committed by now
        # (the unique index made this insert wait for the other transaction).
        return WebhookEvent.objects.get(provider=provider, event_id=event_id), False


def process_webhook_event(*, event_pk: int) -> tuple[WebhookEvent, ApplicationError | None]:
    """Run the event's handler once. Returns the event and the refusal, if any."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_pk)
        if event.status in DONE:
            return event, None
        handler = HANDLERS[event.provider].get(event.event_type)
        event.attempts += 1
        refusal: ApplicationError | None = None
        if handler is None:
            event.status = WebhookEvent.Status.IGNORED
        else:
            try:
                with transaction.atomic():
                    ours = handler(event.payload, event.event_id)
            except ApplicationError as exc:
                refusal = exc
                event.status = WebhookEvent.Status.FAILED
                event.error = f"{exc.code}: {exc.message} {exc.details}"
                logger.warning(
                    "%s webhook %s (%s) refused: %s", event.provider, event.event_id, event.event_type, exc
                )
            else:
                event.status = WebhookEvent.Status.PROCESSED if ours else WebhookEvent.Status.IGNORED
                event.error = ""
        if event.status in DONE:
            event.processed_at = timezone.now()
        event.save(update_fields=["status", "attempts", "error", "processed_at"])
    return event, refusal


def mark_webhook_failed(*, event_pk: int, error: str) -> None:
    """Record an unexpected processing error (the provider will deliver the event again)."""
    with transaction.atomic():
        WebhookEvent.objects.filter(pk=event_pk).exclude(status__in=DONE).update(
            status=WebhookEvent.Status.FAILED, error=error[:5000]
        )


def receive_webhook(
    *, provider: str, event_id: str, event_type: str, payload: dict[str, Any]
) -> WebhookOutcome:
    """Store, then process. Unexpected errors are recorded on the event and re-raised."""
    event, created = store_webhook_event(
        provider=provider, event_id=event_id, event_type=event_type, payload=payload
    )
    try:
        event, refusal = process_webhook_event(event_pk=event.pk)
    except Exception as exc:
        logger.exception("%s webhook %s failed", provider, event_id)
        count_webhook_failure(provider=provider, reason="unexpected_error")
        mark_webhook_failed(event_pk=event.pk, error=f"{exc.__class__.__name__}: {exc}")
        raise
    if refusal is not None:
        count_webhook_failure(provider=provider, reason=refusal.code)
    return WebhookOutcome(event=event, replayed=not created, error=refusal)


PRUNE_BATCH = 1000


def prune_webhook_events(*, older_than_days: int, now: datetime | None = None) -> int:
    """Delete processed and ignored webhook events received more than ``older_than_days`` ago,
    in batches (each its own short transaction); failed and unprocessed ones stay for ops. A
    redelivery of a pruned event is stored and processed again, and changes nothing: every
    effect is idempotent on its own key (purchase, history row). Returns how many went."""
    if older_than_days < 1:
        raise ValidationFailed(
            "Keep webhook events at least a day.", details={"older_than_days": older_than_days}
        )
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    removed = 0
    while True:
        with transaction.atomic():
            batch = list(
                WebhookEvent.objects.filter(status__in=DONE, received_at__lt=cutoff)
                .order_by("pk")
                .values_list("pk", flat=True)[:PRUNE_BATCH]
            )
            if not batch:
                return removed
            removed += WebhookEvent.objects.filter(pk__in=batch).delete()[0]
