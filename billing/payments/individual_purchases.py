"""Individual credits bought by card through Stripe Checkout: a user (with or without an
organization) buys credits for their own balance, the one that pays when they bill without an
organization. The same flow as an organization's purchase (``billing.payments.purchases``):

- the checkout is opened between two short transactions, with no lock held during the Stripe call;
- the webhook fulfils it exactly once: the purchase row is locked and must still be open, and the
  balance's ledger entry is keyed by the Checkout Session (``change_individual_total``);
- a refund takes the credits back only while the balance still holds them free; otherwise the
  purchase goes to ``refund_review`` for ops; a dispute always goes there.

Our Checkout Sessions carry ``individual_purchase_id`` in their metadata (and no
``client_reference_id``), so the organization handlers ignore them and these handle them.
Lock order: the webhook event row, the purchase row, then the user's individual balance.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.audit import record_audit_event
from billing.clients.stripe import stripe_client, stripe_configured, stripe_errors
from billing.errors import PaymentsNotConfigured, PurchaseNotFound
from billing.ledger.individual import change_individual_total
from billing.ledger.locks import lock_individual_balance
from billing.models import IndividualCreditEntry, IndividualCreditPurchase, WebhookEvent
from billing.money import USD_QUANTUM, millicredits_to_credits
from billing.payments.quotes import cents, quote_purchase
from organizations.models import User
from orgbilling.errors import Conflict

Status = IndividualCreditPurchase.Status
OPEN = (Status.PENDING, Status.FAILED, Status.CANCELED)
METADATA_KEY = "individual_purchase_id"
REVERSALS = ("charge.refunded", "charge.dispute.created")
SESSION_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


def _return_urls() -> tuple[str, str] | None:
    """Where Checkout sends the buyer back: the individual settings, else the organization ones
    when they do not name an organization (``{org_id}``)."""
    success = settings.STRIPE_INDIVIDUAL_CHECKOUT_SUCCESS_URL or settings.STRIPE_CHECKOUT_SUCCESS_URL
    cancel = settings.STRIPE_INDIVIDUAL_CHECKOUT_CANCEL_URL or settings.STRIPE_CHECKOUT_CANCEL_URL
    if not success or not cancel or "{org_id}" in success + cancel:
        return None
    return success, cancel


def start_individual_purchase(
    *, user: User, credits: int | None = None, amount_usd: Decimal | None = None
) -> IndividualCreditPurchase:
    """Open a Stripe Checkout Session for ``user``'s own credits: a ``pending`` purchase with its
    checkout URL. Same bounds as an organization's purchase. Stripe down → the purchase is
    ``failed`` and ``BillingBackendUnavailable`` (503)."""
    urls = _return_urls()
    if not stripe_configured() or urls is None:
        raise PaymentsNotConfigured(details={"user_id": user.username})
    quote = quote_purchase(credits=credits, amount_usd=amount_usd)
    with transaction.atomic():
        purchase = IndividualCreditPurchase.objects.create(
            user=user, credits=quote.credits, amount=quote.amount, currency="USD"
        )
        record_audit_event(
            action="individual_purchase.created",
            actor=user,
            target_type="individual_credit_purchase",
            target_id=purchase.pk,
            metadata={"credits": quote.credits, "amount": str(quote.amount)},
        )
    try:
        with stripe_errors("checkout session create"):
            session = stripe_client().v1.checkout.sessions.create(
                params=_checkout_params(user, purchase, urls),  # type: ignore[arg-type]
                options={"idempotency_key": f"individual-credit-purchase-{purchase.pk}"},
            )
    except Exception as exc:
        with transaction.atomic():
            IndividualCreditPurchase.objects.filter(pk=purchase.pk).update(
                status=Status.FAILED,
                failure_reason=f"checkout could not be opened: {exc.__class__.__name__}"[:500],
                updated_at=timezone.now(),
            )
            record_audit_event(
                action="individual_purchase.checkout_failed",
                actor=user,
                target_type="individual_credit_purchase",
                target_id=purchase.pk,
                metadata={"error": exc.__class__.__name__},
            )
        raise
    with transaction.atomic():
        purchase.stripe_checkout_session_id = session.id
        purchase.checkout_url = session.url or ""
        expires = session.expires_at
        purchase.checkout_expires_at = datetime.fromtimestamp(expires, tz=UTC) if expires else None
        purchase.save(
            update_fields=["stripe_checkout_session_id", "checkout_url", "checkout_expires_at", "updated_at"]
        )
    return purchase


def _checkout_params(user: User, purchase: IndividualCreditPurchase, urls: tuple[str, str]) -> dict[str, Any]:
    references = {METADATA_KEY: str(purchase.pk), "user_id": user.username}
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": cents(purchase.amount),
                    "product_data": {
                        "name": f"{millicredits_to_credits(purchase.credits).normalize():,f} credits",
                        "description": f"Prepaid individual credits for {user.username}",
                    },
                },
                "quantity": 1,
            }
        ],
        "success_url": urls[0],
        "cancel_url": urls[1],
        "metadata": references,
        "payment_intent_data": {"metadata": references},
    }
    if user.email:
        params["customer_email"] = user.email
    return params


# --- webhook-driven changes (each runs inside the webhook event's transaction) -------------------


def _ref(obj: dict[str, Any]) -> str | None:
    ref = (obj.get("metadata") or {}).get(METADATA_KEY)
    return str(ref) if ref else None


def _lock(**lookup: Any) -> IndividualCreditPurchase | None:
    lookup = {key: value for key, value in lookup.items() if value}
    if not lookup:
        return None
    return IndividualCreditPurchase.objects.select_for_update(of=("self",)).filter(**lookup).first()


def _lock_by_ref(ref: str) -> IndividualCreditPurchase:
    purchase = _lock(pk=int(ref)) if ref.isdigit() else None
    if purchase is None:
        raise PurchaseNotFound(details={METADATA_KEY: ref})
    return purchase


def _stored_events(types: tuple[str, ...], payment_intent: str) -> Any:
    return WebhookEvent.objects.filter(
        provider=WebhookEvent.Provider.STRIPE,
        event_type__in=types,
        payload__data__object__payment_intent=payment_intent,
    )


def _audit(purchase: IndividualCreditPurchase, action: str, **metadata: Any) -> None:
    record_audit_event(
        action=f"individual_purchase.{action}",
        actor=purchase.user if action == "fulfilled" else None,
        actor_label="stripe",
        target_type="individual_credit_purchase",
        target_id=purchase.pk,
        metadata={"user_id": purchase.user.username, **metadata},
    )


def fulfil_individual_checkout_session(*, session: dict[str, Any]) -> bool:
    """A paid Checkout Session of an individual purchase: its credits go to the user's balance,
    exactly once. False when the session is not an individual purchase."""
    ref = _ref(session)
    if ref is None:
        return False
    if session.get("payment_status") != "paid":
        return True  # a delayed payment method: async_payment_succeeded follows
    purchase = _lock_by_ref(ref)
    if purchase.stripe_checkout_session_id and purchase.stripe_checkout_session_id != session.get("id"):
        raise Conflict("The session does not belong to this purchase.", details={METADATA_KEY: ref})
    if purchase.status not in OPEN:
        return True  # fulfilled (or refunded) already: a redelivery changes nothing
    paid, currency = session.get("amount_total"), str(session.get("currency") or "").upper()
    if paid != cents(purchase.amount) or currency != purchase.currency:
        raise Conflict(
            "The amount paid does not match the purchase.",
            details={METADATA_KEY: ref, "expected_cents": cents(purchase.amount), "paid_cents": paid},
        )
    payment_intent = session.get("payment_intent") or None
    purchase.stripe_checkout_session_id = session["id"]
    purchase.stripe_payment_intent_id = payment_intent
    reversal = (
        _stored_events(REVERSALS, payment_intent).values_list("event_type", flat=True).first()
        if payment_intent
        else None
    )
    if reversal is not None:
        # Paid back (or disputed) before we credited it: no credits for that money.
        purchase.status = Status.REFUND_REVIEW
        purchase.failure_reason = f"{reversal} arrived before the payment was fulfilled"
        purchase.save()
        _audit(purchase, "refund_needs_review", reason=f"{reversal} before fulfilment", credits_added=0)
        return True
    balance = lock_individual_balance(purchase.user_id)
    change = change_individual_total(
        balance=balance,
        kind=IndividualCreditEntry.Kind.PURCHASE,
        credits=purchase.credits,
        external_id=f"stripe-checkout-{session['id']}",
        actor=purchase.user,
        actor_label="stripe",
        reason=f"{millicredits_to_credits(purchase.credits).normalize():,f} credits bought by card",
        metadata={"purchase_id": purchase.pk, "amount": str(purchase.amount)},
    )
    purchase.status = Status.FULFILLED
    purchase.fulfilled_at = timezone.now()
    purchase.failure_reason = ""
    purchase.save()
    _audit(
        purchase,
        "fulfilled",
        credits=purchase.credits,
        amount=str(purchase.amount),
        entry_id=change.entry.pk,
        total_after=change.balance.total_credits,
    )
    return True


def close_individual_checkout_session(*, session: dict[str, Any], status: str, reason: str) -> bool:
    """An expired session (``canceled``) or a delayed payment that failed (``failed``)."""
    ref = _ref(session)
    if ref is None:
        return False
    purchase = _lock_by_ref(ref)
    if purchase.status == Status.PENDING:
        purchase.status = status
        purchase.failure_reason = reason
        purchase.save(update_fields=["status", "failure_reason", "updated_at"])
        _audit(purchase, status, reason=reason, session=session.get("id"))
    return True


def _lock_of_payment(payment_intent: str | None) -> IndividualCreditPurchase | None:
    """The individual purchase a charge or dispute is about, by its payment intent (known once
    fulfilled) or by a stored checkout event that names it (a refund may come first)."""
    if not payment_intent:
        return None
    purchase = _lock(stripe_payment_intent_id=payment_intent)
    if purchase is not None:
        return purchase
    sessions = _stored_events(SESSION_EVENTS, payment_intent).values_list(
        "payload__data__object__id", flat=True
    )
    for session_id in sessions:
        purchase = _lock(stripe_checkout_session_id=session_id)
        if purchase is not None:
            return purchase
    return None


def record_individual_charge_refunded(*, charge: dict[str, Any]) -> bool:
    """A refund of an individual purchase's charge (False: not one of them). A full refund of a
    fulfilled purchase takes its credits back while the balance holds them free; otherwise (a
    partial refund, or credits already spent or held) the purchase goes to ``refund_review``."""
    purchase = _lock_of_payment(charge.get("payment_intent"))
    if purchase is None:
        return False
    refunded_total = (Decimal(int(charge.get("amount_refunded") or 0)) / 100).quantize(USD_QUANTUM)
    refunded_total = min(refunded_total, purchase.amount)
    if refunded_total <= purchase.refunded_amount:
        return True
    full = refunded_total >= purchase.amount
    was = purchase.status
    purchase.refunded_amount = refunded_total
    removed = 0
    if was == Status.FULFILLED and full:
        balance = lock_individual_balance(purchase.user_id)
        if balance.free_credits >= purchase.credits:
            change_individual_total(
                balance=balance,
                kind=IndividualCreditEntry.Kind.REFUND,
                credits=-purchase.credits,
                external_id=f"stripe-refund-{charge.get('id')}",
                actor_label="stripe",
                reason=f"Refund of purchase #{purchase.pk}",
                metadata={"purchase_id": purchase.pk},
            )
            removed = purchase.credits
        purchase.status = Status.REFUNDED if removed else Status.REFUND_REVIEW
    elif was in OPEN and full:
        purchase.status = Status.REFUNDED  # refunded before we credited it: nothing to take back
    else:
        purchase.status = Status.REFUND_REVIEW
    purchase.save(update_fields=["status", "refunded_amount", "updated_at"])
    action = "refunded" if purchase.status == Status.REFUNDED else "refund_needs_review"
    _audit(purchase, action, refunded_total=str(refunded_total), credits_removed=removed, was=was)
    return True


def record_individual_dispute(*, dispute: dict[str, Any]) -> bool:
    """A chargeback on an individual purchase: to ``refund_review`` (nothing clawed back
    automatically, and never fulfilled afterwards). False when not one of them."""
    purchase = _lock_of_payment(dispute.get("payment_intent"))
    if purchase is None:
        return False
    was = purchase.status
    purchase.status = Status.REFUND_REVIEW
    purchase.save(update_fields=["status", "updated_at"])
    _audit(purchase, "disputed", dispute=dispute.get("id"), reason=dispute.get("reason"), was=was)
    return True
