"""Credit purchases by card through Stripe Checkout: open one, fulfil it once, record failures
and refunds.

Lock order here: the webhook event row (``billing.payments.webhook_events``), then the purchase row,
then the organization's pool (``billing.ledger.locks``). No Stripe call is made while any of
them is held: the checkout is opened between two short transactions.

Fulfilment is exactly once twice over: the purchase row is locked and must still be open, and
the pool top-up is keyed by the Checkout Session (``add_credits_to_pool(external_id=...)``).
A refund takes the credits back only when the pool still holds them unallocated; otherwise the
purchase goes to ``refund_review`` for ops (credits already handed out are never clawed back
silently).
"""

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.audit import record_audit_event
from billing.clients.stripe import stripe_client, stripe_configured, stripe_errors
from billing.errors import OrganizationInactive, OrganizationNotFound, PaymentsNotConfigured, PurchaseNotFound
from billing.ledger.locks import lock_pool
from billing.ledger.pool import add_credits_to_pool, take_back_unallocated_credits
from billing.models import AutoTopUpSettings, CreditGrant, CreditPurchase, OrgBillingHistory, WebhookEvent
from billing.money import USD_QUANTUM, millicredits_to_credits
from billing.payments.auto_topup import (
    record_auto_topup_failure,
    reset_auto_topup_failures,
    save_checkout_card,
)
from billing.payments.quotes import Quote, cents, quote_purchase
from organizations.models import Organization, User
from orgbilling.errors import Conflict

logger = logging.getLogger(__name__)

OPEN = (CreditPurchase.Status.PENDING, CreditPurchase.Status.FAILED, CreditPurchase.Status.CANCELED)


def _require_paid_in_full(purchase: CreditPurchase, *, paid: Any, currency: Any) -> None:
    """Stripe's amount (cents) and currency must be the purchase's, or nothing is credited."""
    currency = str(currency or "").upper()
    if paid != cents(purchase.amount) or currency != purchase.currency:
        raise Conflict(
            "The amount paid does not match the purchase.",
            details={
                "purchase_id": purchase.pk,
                "expected_cents": cents(purchase.amount),
                "paid_cents": paid,
                "currency": currency,
            },
        )


def start_credit_purchase(
    *, org_id: str, actor: User, credits: int | None = None, amount_usd: Decimal | None = None
) -> CreditPurchase:
    """Open a Stripe Checkout Session for credits: a ``pending`` purchase carrying its checkout
    URL. Stripe down → the purchase is ``failed`` and ``BillingBackendUnavailable`` (503)."""
    if not stripe_configured():
        raise PaymentsNotConfigured(details={"org_id": org_id})
    quote = quote_purchase(credits=credits, amount_usd=amount_usd)
    org = Organization.objects.filter(pk=org_id).first()
    if org is None:
        raise OrganizationNotFound(details={"org_id": org_id})
    if not org.is_active:
        raise OrganizationInactive(details={"org_id": org_id})
    purchase = _record_pending_purchase(org, actor, quote)
    try:
        with stripe_errors("checkout session create"):
            session = stripe_client().v1.checkout.sessions.create(
                params=_checkout_params(org, actor, purchase),  # type: ignore[arg-type]
                options={"idempotency_key": f"credit-purchase-{purchase.pk}"},
            )
    except Exception as exc:
        _record_checkout_failed(purchase, org, actor, exc)
        raise
    expires = session.expires_at
    with transaction.atomic():
        purchase.stripe_checkout_session_id = session.id
        purchase.checkout_url = session.url or ""
        purchase.checkout_expires_at = datetime.fromtimestamp(expires, tz=UTC) if expires else None
        purchase.save(
            update_fields=["stripe_checkout_session_id", "checkout_url", "checkout_expires_at", "updated_at"]
        )
    return purchase


def _record_pending_purchase(org: Organization, actor: User, quote: Quote) -> CreditPurchase:
    with transaction.atomic():
        purchase = CreditPurchase.objects.create(
            org=org, purchased_by=actor, credits=quote.credits, amount=quote.amount, currency="USD"
        )
        record_audit_event(
            action="purchase.created",
            actor=actor,
            org_id=org.id,
            target_type="credit_purchase",
            target_id=purchase.pk,
            metadata={"credits": quote.credits, "amount": str(quote.amount)},
        )
    return purchase


def checkout_return_url(template: str, *, org_id: str) -> str:
    """The Checkout return address for this org: ``{org_id}`` in the setting becomes the org's id
    (URL-quoted), so a deployment can send the buyer back to the org's own portal page. Stripe's
    own placeholders (``{CHECKOUT_SESSION_ID}``) are left for Stripe to fill."""
    return template.replace("{org_id}", quote(org_id, safe=""))


def _checkout_params(org: Organization, actor: User, purchase: CreditPurchase) -> dict[str, Any]:
    """The Checkout Session Stripe is asked for: one line item, our references, the customer."""
    references = {"purchase_id": str(purchase.pk), "org_id": org.id}
    credits_label = f"{millicredits_to_credits(purchase.credits).normalize():,f} credits"
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": cents(purchase.amount),
                    "product_data": {
                        "name": credits_label,
                        "description": f"Prepaid credits for {org.org_name}",
                    },
                },
                "quantity": 1,
            }
        ],
        "success_url": checkout_return_url(settings.STRIPE_CHECKOUT_SUCCESS_URL, org_id=org.id),
        "cancel_url": checkout_return_url(settings.STRIPE_CHECKOUT_CANCEL_URL, org_id=org.id),
        "client_reference_id": str(purchase.pk),
        "metadata": references,
        "payment_intent_data": {"metadata": references},
    }
    email = org.billing_email or actor.email
    if org.stripe_customer_id:
        params["customer"] = org.stripe_customer_id
    elif email:
        params["customer_email"] = email
    if AutoTopUpSettings.objects.filter(org=org, save_card_at_checkout=True).exists():
        # The admin opted in: Stripe keeps the card on the org's customer for off-session
        # auto top-ups; the card is recorded when the payment succeeds (payment_intent.succeeded).
        params["payment_intent_data"]["setup_future_usage"] = "off_session"
        if not org.stripe_customer_id:
            params["customer_creation"] = "always"
    return params


def _record_checkout_failed(purchase: CreditPurchase, org: Organization, actor: User, exc: Exception) -> None:
    with transaction.atomic():
        CreditPurchase.objects.filter(pk=purchase.pk).update(
            status=CreditPurchase.Status.FAILED,
            failure_reason=f"checkout could not be opened: {exc.__class__.__name__}"[:500],
            updated_at=timezone.now(),
        )
        record_audit_event(
            action="purchase.checkout_failed",
            actor=actor,
            org_id=org.id,
            target_type="credit_purchase",
            target_id=purchase.pk,
            metadata={"error": exc.__class__.__name__},
        )


# --- webhook-driven changes (each runs inside the webhook event's transaction) -------------------


def _purchase_ref(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata") or {}
    ref = metadata.get("purchase_id") or obj.get("client_reference_id")
    return str(ref) if ref else None


def _lock_purchase(*, purchase_id: str | None = None, **lookup: Any) -> CreditPurchase | None:
    query = CreditPurchase.objects.select_for_update(of=("self",))
    if purchase_id is not None:
        if not purchase_id.isdigit():
            return None
        return query.filter(pk=int(purchase_id)).first()
    lookup = {key: value for key, value in lookup.items() if value}
    return query.filter(**lookup).first() if lookup else None


# Stripe events that take a payment back: a paid checkout whose payment intent already has one
# is not credited (they can arrive before the checkout's own event).
REVERSALS = ("charge.refunded", "charge.dispute.created")
SESSION_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)


def _stored_stripe_events(*, types: tuple[str, ...], payment_intent: str) -> Any:
    return WebhookEvent.objects.filter(
        provider=WebhookEvent.Provider.STRIPE,
        event_type__in=types,
        payload__data__object__payment_intent=payment_intent,
    )


def _lock_purchase_of_payment(*, payment_intent: str | None, obj: dict[str, Any]) -> CreditPurchase | None:
    """The purchase a charge or dispute is about. Stripe's charges carry no metadata of ours;
    they name the payment intent, which we learn from the checkout session (fulfilment, or a
    stored ``checkout.session.*`` event not processed yet) or a declined attempt."""
    purchase = _lock_purchase(stripe_payment_intent_id=payment_intent)
    if purchase is None and _purchase_ref(obj) is not None:
        purchase = _lock_purchase(purchase_id=_purchase_ref(obj))
    if purchase is None and payment_intent:
        sessions = (
            _stored_stripe_events(types=SESSION_EVENTS, payment_intent=payment_intent)
            .order_by("pk")
            .values_list("payload__data__object__id", flat=True)
        )
        for session_id in sessions:
            purchase = _lock_purchase(stripe_checkout_session_id=session_id)
            if purchase is not None:
                break
    return purchase


def _held_for_reversal(
    purchase: CreditPurchase, *, payment_intent: str | None, session_id: str | None
) -> bool:
    """A payment already refunded or disputed (those events can arrive before the payment's own)
    is not credited: the purchase goes to ``refund_review``. The purchase row is locked."""
    if not payment_intent:
        return False
    reversal = (
        _stored_stripe_events(types=REVERSALS, payment_intent=payment_intent)
        .values_list("event_type", flat=True)
        .first()
    )
    if reversal is None:
        return False
    # Paid back (or disputed) before we credited it: no credits for that money; the
    # refund/dispute event, redelivered, now finds the purchase by its payment intent.
    purchase.status = CreditPurchase.Status.REFUND_REVIEW
    if session_id:
        purchase.stripe_checkout_session_id = session_id
    purchase.stripe_payment_intent_id = payment_intent
    purchase.failure_reason = f"{reversal} arrived before the payment was fulfilled"
    purchase.save()
    record_audit_event(
        action="purchase.refund_needs_review",
        actor_label="stripe",
        org_id=purchase.org_id,
        target_type="credit_purchase",
        target_id=purchase.pk,
        metadata={"reason": f"{reversal} before fulfilment", "credits_added": 0},
    )
    return True


def _fulfil(
    purchase: CreditPurchase, *, external_id: str, payment_intent: str | None, session_id: str | None = None
) -> None:
    """Add a paid purchase's credits to the pool (keyed by ``external_id``, so once) and mark it
    fulfilled. The purchase row is locked by the caller and still open."""
    # Money was taken: the credits are owed even if the org was deactivated meanwhile.
    change = add_credits_to_pool(
        org_id=purchase.org_id,
        amount=purchase.credits,
        purchase_amount=purchase.amount,
        actor_label="stripe",
        external_id=external_id,
        description=f"{millicredits_to_credits(purchase.credits).normalize():,f} credits bought by card"
        + (" (auto top-up)" if purchase.origin == CreditPurchase.Origin.AUTO_TOPUP else ""),
        require_active_org=False,
        source=(
            CreditGrant.Source.AUTO_TOPUP
            if purchase.origin == CreditPurchase.Origin.AUTO_TOPUP
            else CreditGrant.Source.PURCHASE
        ),
        purchase=purchase,
    )
    purchase.status = CreditPurchase.Status.FULFILLED
    purchase.fulfilled_at = timezone.now()
    if session_id:
        purchase.stripe_checkout_session_id = session_id
    purchase.stripe_payment_intent_id = payment_intent
    purchase.failure_reason = ""
    purchase.save()
    record_audit_event(
        action="purchase.fulfilled",
        actor=purchase.purchased_by,
        actor_label="stripe",
        org_id=purchase.org_id,
        target_type="credit_purchase",
        target_id=purchase.pk,
        metadata={
            "credits": purchase.credits,
            "amount": str(purchase.amount),
            "origin": purchase.origin,
            "history_id": change.history.pk if change.history else None,
            "total_after": change.pool.total_credits,
            "org_active": Organization.objects.filter(pk=purchase.org_id, is_active=True).exists(),
        },
    )


def fulfil_checkout_session(*, session: dict[str, Any]) -> bool:
    """A paid Checkout Session: add the purchase's credits to the pool, exactly once.
    Returns False when the session is not one of our purchases."""
    ref = _purchase_ref(session)
    if ref is None:
        return False
    if session.get("payment_status") != "paid":
        # Completed but not paid yet (a delayed payment method): async_payment_succeeded follows.
        return True
    with transaction.atomic():
        purchase = _lock_purchase(purchase_id=ref)
        if purchase is None:
            raise PurchaseNotFound(details={"purchase_id": ref, "session": session.get("id")})
        if purchase.origin != CreditPurchase.Origin.CHECKOUT or (
            purchase.stripe_checkout_session_id and purchase.stripe_checkout_session_id != session.get("id")
        ):
            raise Conflict("The session does not belong to this purchase.", details={"purchase_id": ref})
        if purchase.status not in OPEN:
            return True  # fulfilled (or refunded) already: a redelivery changes nothing
        _require_paid_in_full(purchase, paid=session.get("amount_total"), currency=session.get("currency"))
        payment_intent = session.get("payment_intent") or None
        if _held_for_reversal(purchase, payment_intent=payment_intent, session_id=session["id"]):
            return True
        _fulfil(
            purchase,
            external_id=f"stripe-checkout-{session['id']}",
            payment_intent=payment_intent,
            session_id=session["id"],
        )
    return True


def close_checkout_session(*, session: dict[str, Any], status: str, reason: str) -> bool:
    """An expired session (``canceled``) or a delayed payment that failed (``failed``)."""
    ref = _purchase_ref(session)
    if ref is None:
        return False
    with transaction.atomic():
        purchase = _lock_purchase(purchase_id=ref)
        if purchase is None:
            raise PurchaseNotFound(details={"purchase_id": ref, "session": session.get("id")})
        if purchase.status != CreditPurchase.Status.PENDING:
            return True
        purchase.status = status
        purchase.failure_reason = reason
        purchase.save(update_fields=["status", "failure_reason", "updated_at"])
        record_audit_event(
            action=f"purchase.{status}",
            actor_label="stripe",
            org_id=purchase.org_id,
            target_type="credit_purchase",
            target_id=purchase.pk,
            metadata={"reason": reason, "session": session.get("id")},
        )
    return True


def record_payment_failed(*, payment_intent: dict[str, Any], event_id: str) -> bool:
    """A card was declined: recorded in the history and on the purchase, which stays open
    (the buyer may try another card in the same checkout)."""
    ref = _purchase_ref(payment_intent)
    if ref is None:
        return False
    error = payment_intent.get("last_payment_error") or {}
    reason = str(error.get("message") or error.get("code") or "payment failed")[:500]
    with transaction.atomic():
        purchase = _lock_purchase(purchase_id=ref)
        if purchase is None:
            raise PurchaseNotFound(details={"purchase_id": ref, "payment_intent": payment_intent.get("id")})
        if purchase.origin == CreditPurchase.Origin.AUTO_TOPUP:
            # An off-session charge is not retried on the same intent: the attempt has failed.
            record_auto_topup_failure(purchase, reason=reason, payment_intent=payment_intent.get("id"))
        elif purchase.status == CreditPurchase.Status.PENDING:
            purchase.failure_reason = reason
            purchase.save(update_fields=["failure_reason", "updated_at"])
        if payment_intent.get("id") and not purchase.stripe_payment_intent_id:
            # Links later charge events (which carry no metadata of ours) to the purchase.
            purchase.stripe_payment_intent_id = payment_intent["id"]
            purchase.save(update_fields=["stripe_payment_intent_id", "updated_at"])
        OrgBillingHistory.objects.get_or_create(
            external_id=f"stripe-payment-failed-{event_id}",
            defaults={
                "org_id": purchase.org_id,
                "event_type": OrgBillingHistory.EventType.PAYMENT,
                "amount": None,  # nothing was received
                "currency": purchase.currency,
                "status": "failed",
                "description": f"Card payment for purchase #{purchase.pk} failed: {reason}"[:500],
                "metadata": {
                    "purchase_id": purchase.pk,
                    "payment_intent": payment_intent.get("id"),
                    "amount_cents": payment_intent.get("amount"),
                    "decline_code": error.get("decline_code"),
                },
                "occurred_at": timezone.now(),
            },
        )
        record_audit_event(
            action="purchase.payment_failed",
            actor_label="stripe",
            org_id=purchase.org_id,
            target_type="credit_purchase",
            target_id=purchase.pk,
            metadata={"reason": reason, "payment_intent": payment_intent.get("id")},
        )
    return True


def record_payment_succeeded(*, payment_intent: dict[str, Any]) -> bool:
    """A PaymentIntent of ours succeeded. An auto top-up is fulfilled here, exactly once (the
    purchase row is locked and must be open; the pool top-up is keyed by the intent). For a
    Checkout purchase (fulfilled by ``checkout.session.*``) it saves the card when the admin
    opted in to auto top-up."""
    ref = _purchase_ref(payment_intent)
    if ref is None:
        return False
    intent_id = payment_intent.get("id")
    with transaction.atomic():
        purchase = _lock_purchase(purchase_id=ref)
        if purchase is None:
            raise PurchaseNotFound(details={"purchase_id": ref, "payment_intent": intent_id})
        if purchase.origin == CreditPurchase.Origin.CHECKOUT:
            save_checkout_card(purchase, payment_intent=payment_intent)
            return True
        if not intent_id or purchase.stripe_payment_intent_id not in (None, intent_id):
            raise Conflict("The payment does not belong to this purchase.", details={"purchase_id": ref})
        if purchase.status not in OPEN:
            return True  # fulfilled (or refunded) already: a redelivery changes nothing
        _require_paid_in_full(
            purchase, paid=payment_intent.get("amount_received"), currency=payment_intent.get("currency")
        )
        if _held_for_reversal(purchase, payment_intent=intent_id, session_id=None):
            return True
        _fulfil(purchase, external_id=f"stripe-payment-intent-{intent_id}", payment_intent=intent_id)
        reset_auto_topup_failures(org_id=purchase.org_id)
    return True


def record_charge_refunded(*, charge: dict[str, Any]) -> bool:
    """A (partial or full) refund of a purchase's charge. ``amount_refunded`` is cumulative, so
    only the part not yet recorded is written; a redelivery writes nothing. A refund matching no
    purchase (yet) is refused, so the event stays ``failed`` and Stripe delivers it again."""
    payment_intent = charge.get("payment_intent")
    with transaction.atomic():
        purchase = _lock_purchase_of_payment(payment_intent=payment_intent, obj=charge)
        if purchase is None:
            raise PurchaseNotFound(details={"charge": charge.get("id"), "payment_intent": payment_intent})
        refunded_total = (Decimal(int(charge.get("amount_refunded") or 0)) / 100).quantize(USD_QUANTUM)
        refunded_total = min(refunded_total, purchase.amount)
        delta = refunded_total - purchase.refunded_amount
        if delta <= 0:
            return True
        full = refunded_total >= purchase.amount
        history = _record_refund_history(purchase, charge, refunded_total, delta)
        purchase.refunded_amount = refunded_total
        purchase.refunded_at = timezone.now()
        action, metadata = _apply_refund(purchase, history, full=full, refunded_total=refunded_total)
        purchase.save(update_fields=["status", "refunded_amount", "refunded_at", "updated_at"])
        record_audit_event(
            action=action,
            actor_label="stripe",
            org_id=purchase.org_id,
            target_type="credit_purchase",
            target_id=purchase.pk,
            metadata={**metadata, "refund": str(delta), "history_id": history.pk},
        )
    return True


def _record_refund_history(
    purchase: CreditPurchase, charge: dict[str, Any], refunded_total: Decimal, delta: Decimal
) -> OrgBillingHistory:
    return OrgBillingHistory.objects.create(
        org_id=purchase.org_id,
        event_type=OrgBillingHistory.EventType.REFUND,
        external_id=f"stripe-refund-{charge.get('id')}-{cents(refunded_total)}",
        amount=delta,
        currency=purchase.currency,
        status="refunded",
        description=f"Refund of {delta} USD for purchase #{purchase.pk}",
        metadata={
            "purchase_id": purchase.pk,
            "charge": charge.get("id"),
            "refunded_total": str(refunded_total),
        },
        occurred_at=timezone.now(),
    )


def _apply_refund(
    purchase: CreditPurchase, history: OrgBillingHistory, *, full: bool, refunded_total: Decimal
) -> tuple[str, dict[str, Any]]:
    """The purchase's status after a refund (set on ``purchase``, saved by the caller), and the
    audit action and facts that say what happened to its credits."""
    was = purchase.status
    if was == CreditPurchase.Status.FULFILLED and full:
        pool = take_back_unallocated_credits(
            org_id=purchase.org_id, amount=purchase.credits, purchase=purchase
        )
        if pool is not None:
            # The credits bought were still unallocated in the pool: taken back.
            history.credits = purchase.credits
            history.save(update_fields=["credits"])
            purchase.status = CreditPurchase.Status.REFUNDED
            action = "purchase.refunded"
            metadata: dict[str, Any] = {
                "credits_removed": purchase.credits,
                "total_after": pool.total_credits,
            }
        else:
            purchase.status = CreditPurchase.Status.REFUND_REVIEW
            action = "purchase.refund_needs_review"
            metadata = {
                "reason": "credits already allocated or used",
                "credits": purchase.credits,
                "pool_available": lock_pool(purchase.org_id).available_credits,  # locked already
            }
    elif was in OPEN or (was == CreditPurchase.Status.REFUND_REVIEW and purchase.fulfilled_at is None):
        # Refunded before we fulfilled it: no credits were added, none will be.
        purchase.status = CreditPurchase.Status.REFUNDED if full else CreditPurchase.Status.REFUND_REVIEW
        action = "purchase.refunded" if full else "purchase.refund_needs_review"
        metadata = {"reason": "refunded before fulfilment", "refunded_total": str(refunded_total)}
    elif was in (CreditPurchase.Status.FULFILLED, CreditPurchase.Status.REFUND_REVIEW):
        purchase.status = CreditPurchase.Status.REFUND_REVIEW
        action = "purchase.refund_needs_review"
        metadata = {"reason": "partial refund", "refunded_total": str(refunded_total)}
    else:
        action = "purchase.refund_needs_review"
        metadata = {"reason": f"refund on a {was} purchase", "refunded_total": str(refunded_total)}
        purchase.status = CreditPurchase.Status.REFUND_REVIEW
    return action, metadata


def record_dispute_opened(*, dispute: dict[str, Any]) -> bool:
    """A chargeback: the buyer's bank is taking the money back. Nothing is clawed back
    automatically; the purchase goes to ``refund_review`` (and is never fulfilled afterwards)."""
    payment_intent = dispute.get("payment_intent")
    with transaction.atomic():
        purchase = _lock_purchase_of_payment(payment_intent=payment_intent, obj=dispute)
        if purchase is None:
            raise PurchaseNotFound(details={"dispute": dispute.get("id"), "payment_intent": payment_intent})
        was = purchase.status
        purchase.status = CreditPurchase.Status.REFUND_REVIEW
        purchase.save(update_fields=["status", "updated_at"])
        record_audit_event(
            action="purchase.disputed",
            actor_label="stripe",
            org_id=purchase.org_id,
            target_type="credit_purchase",
            target_id=purchase.pk,
            metadata={
                "dispute": dispute.get("id"),
                "charge": dispute.get("charge"),
                "amount_cents": dispute.get("amount"),
                "reason": dispute.get("reason"),
                "from": was,
                "credits": purchase.credits if was == CreditPurchase.Status.FULFILLED else 0,
            },
        )
    return True
