"""Auto top-up: buy credits off-session with the organization's saved card when the pool's
available credits fall below a threshold, within a monthly cap; off after repeated failures.

A run (``run_auto_topups``, every 5 minutes) opens a ``CreditPurchase`` (origin ``auto_topup``,
``pending``) in a short transaction that locks the org's settings row, then asks Stripe for a
confirmed off-session PaymentIntent with no lock held (idempotency key ``auto-topup-<purchase>``).
``payment_intent.succeeded`` fulfils it through ``purchases._fulfil`` (once: the purchase row is
locked and must be open; the pool top-up is keyed by the intent); a declined card, at creation or
by ``payment_intent.payment_failed``, fails the purchase and counts one failure.

Lock order: purchase row, then the pool (``billing.ledger.locks``), then the settings row.
Opening a top-up locks only the settings row (the pool is read unlocked: a top-up only adds);
re-asking Stripe for a pending one locks only that purchase.
At most one auto top-up is in flight per organization (a partial unique index on purchases).
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.audit import record_audit_event
from billing.clients.stripe import stripe_charge_errors, stripe_client, stripe_configured
from billing.errors import (
    AutoTopUpNeedsCard,
    BillingBackendUnavailable,
    OrganizationNotFound,
    PaymentDeclined,
    PaymentsNotConfigured,
)
from billing.models import AutoTopUpSettings, CreditPurchase, OrganizationCreditPool
from billing.money import millicredits_to_credits
from billing.payments.quotes import cents, quote_purchase
from billing.services.notifications import org_admin_recipients, queue_email
from organizations.models import Organization, User
from orgbilling.errors import Conflict, InvalidAmount

logger = logging.getLogger(__name__)

# What an auto top-up charge counts against the monthly cap: money taken or being taken.
NOT_CHARGED = (CreditPurchase.Status.FAILED, CreditPurchase.Status.CANCELED)


# --- reads ------------------------------------------------------------------------------------


def month_start(now: Any = None) -> Any:
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def auto_topup_spent_this_month(*, org_id: str, now: Any = None) -> Decimal:
    """USD charged (or being charged) by auto top-ups since the 1st of this month, UTC."""
    total = (
        CreditPurchase.objects.filter(
            org_id=org_id, origin=CreditPurchase.Origin.AUTO_TOPUP, created_at__gte=month_start(now)
        )
        .exclude(status__in=NOT_CHARGED)
        .aggregate(total=Sum("amount"))["total"]
    )
    return total or Decimal("0.00")


# --- settings ---------------------------------------------------------------------------------


def update_auto_topup(
    *,
    org_id: str,
    actor: User,
    enabled: bool,
    threshold_credits: int,
    amount_credits: int,
    monthly_cap_usd: Decimal,
    save_card_at_checkout: bool,
) -> AutoTopUpSettings:
    """Replace the organization's auto top-up settings. Enabling needs a saved card (409) and
    Stripe configured (503); (re-)enabling clears the failure count and the disabled reason."""
    quote = quote_purchase(credits=amount_credits)  # a whole number of cents, within the bounds
    if monthly_cap_usd < quote.amount:
        raise InvalidAmount(
            "The monthly cap must allow at least one top-up.",
            details={"monthly_cap_usd": str(monthly_cap_usd), "top_up_usd": str(quote.amount)},
        )
    if enabled and not stripe_configured():
        raise PaymentsNotConfigured(details={"org_id": org_id})
    if not Organization.objects.filter(pk=org_id).exists():
        raise OrganizationNotFound(details={"org_id": org_id})
    try:
        with transaction.atomic():
            row = AutoTopUpSettings.objects.select_for_update().filter(org_id=org_id).first()
            created = row is None
            if row is None:
                row = AutoTopUpSettings(org_id=org_id)
            before = _snapshot(row) if not created else None
            if enabled and not row.stripe_payment_method_id:
                raise AutoTopUpNeedsCard(details={"org_id": org_id})
            if enabled and (not row.enabled or row.disabled_reason):
                row.consecutive_failures = 0
                row.disabled_reason = ""
            row.enabled = enabled
            row.threshold_credits = threshold_credits
            row.amount_credits = amount_credits
            row.monthly_cap_usd = monthly_cap_usd
            row.save_card_at_checkout = save_card_at_checkout
            row.updated_by = actor
            row.save(force_insert=created)
            record_audit_event(
                action="auto_topup.updated",
                actor=actor,
                org_id=org_id,
                target_type="auto_topup",
                target_id=org_id,
                metadata={"before": before, "after": _snapshot(row)},
            )
    except IntegrityError as exc:  # two first saves at once: the other one won
        raise Conflict("The settings changed meanwhile; try again.", details={"org_id": org_id}) from exc
    return row


def _snapshot(row: AutoTopUpSettings) -> dict[str, Any]:
    return {
        "enabled": row.enabled,
        "threshold_credits": row.threshold_credits,
        "amount_credits": row.amount_credits,
        "monthly_cap_usd": str(row.monthly_cap_usd),
        "save_card_at_checkout": row.save_card_at_checkout,
    }


def save_checkout_card(purchase: CreditPurchase, *, payment_intent: dict[str, Any]) -> bool:
    """A Checkout payment that Stripe saved for off-session use (``setup_future_usage``, asked
    only when the admin opted in): remember its card and customer. Runs in the webhook's
    transaction with the purchase row locked."""
    method, customer = payment_intent.get("payment_method"), payment_intent.get("customer")
    if payment_intent.get("setup_future_usage") != "off_session" or not method or not customer:
        return False
    row = AutoTopUpSettings.objects.select_for_update().filter(org_id=purchase.org_id).first()
    if row is None or not row.save_card_at_checkout:
        return False
    org = Organization.objects.get(pk=purchase.org_id)
    if org.stripe_customer_id and org.stripe_customer_id != customer:
        logger.warning("card of %s not saved: customer %s is not the org's", purchase.org_id, customer)
        return False
    if not org.stripe_customer_id:
        Organization.objects.filter(pk=org.pk, stripe_customer_id="").update(stripe_customer_id=customer)
    row.stripe_payment_method_id = str(method)
    row.save(update_fields=["stripe_payment_method_id", "updated_at"])
    record_audit_event(
        action="auto_topup.card_saved",
        actor=purchase.purchased_by,
        actor_label="stripe",
        org_id=purchase.org_id,
        target_type="auto_topup",
        target_id=purchase.org_id,
        metadata={"purchase_id": purchase.pk, "payment_method": method, "customer": customer},
    )
    return True


def reset_auto_topup_failures(*, org_id: str) -> None:
    """A top-up was paid: the failure streak is over."""
    AutoTopUpSettings.objects.filter(org_id=org_id, consecutive_failures__gt=0).update(
        consecutive_failures=0, updated_at=timezone.now()
    )


def record_auto_topup_failure(purchase: CreditPurchase, *, reason: str, payment_intent: str | None) -> None:
    """A declined top-up: the purchase fails and one failure is counted (once per purchase,
    whether the decline came with the charge or by webhook, or both). Turns auto top-up off at
    ``AUTO_TOPUP_MAX_CONSECUTIVE_FAILURES``, with an audit event and an e-mail to the org admins.
    The purchase row is locked by the caller (inside a transaction)."""
    if purchase.status != CreditPurchase.Status.PENDING:
        return
    purchase.status = CreditPurchase.Status.FAILED
    purchase.failure_reason = reason[:500]
    if payment_intent and not purchase.stripe_payment_intent_id:
        purchase.stripe_payment_intent_id = payment_intent
    purchase.save(update_fields=["status", "failure_reason", "stripe_payment_intent_id", "updated_at"])
    row = AutoTopUpSettings.objects.select_for_update().get(org_id=purchase.org_id)
    row.consecutive_failures += 1
    record_audit_event(
        action="auto_topup.payment_failed",
        actor_label="stripe",
        org_id=purchase.org_id,
        target_type="credit_purchase",
        target_id=purchase.pk,
        metadata={"reason": reason, "payment_intent": payment_intent, "failures": row.consecutive_failures},
    )
    limit = settings.AUTO_TOPUP_MAX_CONSECUTIVE_FAILURES
    if row.enabled and row.consecutive_failures >= limit:
        row.enabled = False
        row.disabled_reason = f"{row.consecutive_failures} payments failed in a row; last: {reason}"[:500]
        record_audit_event(
            action="auto_topup.disabled",
            actor_label="system",
            org_id=purchase.org_id,
            target_type="auto_topup",
            target_id=purchase.org_id,
            metadata={"failures": row.consecutive_failures, "last_reason": reason},
        )
        queue_email(
            subject=f"Auto top-up turned off for {purchase.org_id}",
            body=(
                f"The last {row.consecutive_failures} automatic credit purchases for organization "
                f"{purchase.org_id} were declined (last reason: {reason}).\n\n"
                "Auto top-up is now off. Update the card by buying credits once with "
                "save_card_at_checkout on, then enable auto top-up again."
            ),
            recipients=org_admin_recipients(purchase.org_id),
        )
    row.save(update_fields=["consecutive_failures", "enabled", "disabled_reason", "updated_at"])


# --- the periodic run -------------------------------------------------------------------------


@dataclass
class AutoTopUpRun:
    started: list[int] = field(default_factory=list)  # purchase ids charged (or retried)
    declined: list[int] = field(default_factory=list)
    unreachable: list[int] = field(default_factory=list)  # kept pending, retried by the next run
    given_up: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Charge:
    purchase: CreditPurchase
    customer: str
    payment_method: str


def run_auto_topups(*, now: Any = None) -> AutoTopUpRun:
    """Top up every enabled organization under its threshold (one at a time, each in its own
    short transaction, Stripe called with no lock held), and retry top-ups whose charge could
    not reach Stripe."""
    outcome = AutoTopUpRun()
    if not stripe_configured():
        return outcome
    now = now or timezone.now()
    org_ids = list(
        AutoTopUpSettings.objects.filter(enabled=True, org__is_active=True)
        .order_by("org_id")
        .values_list("org_id", flat=True)
    )
    for org_id in org_ids:
        try:
            charge = _open_topup(org_id=org_id, now=now, outcome=outcome)
            if charge is not None:
                _charge(charge, outcome=outcome)
        except Exception:  # one organization's trouble does not stop the others
            logger.exception("auto top-up of %s failed", org_id)
    return outcome


def _in_flight(org_id: str, *, lock: bool = False) -> CreditPurchase | None:
    query = CreditPurchase.objects.select_for_update() if lock else CreditPurchase.objects
    return query.filter(
        org_id=org_id, origin=CreditPurchase.Origin.AUTO_TOPUP, status=CreditPurchase.Status.PENDING
    ).first()


def _resume_in_flight(*, org_id: str, now: Any, outcome: AutoTopUpRun) -> _Charge | None:
    """An earlier top-up still pending: its webhook decides, unless its charge never reached
    Stripe; then it is asked again (same idempotency key), or given up once the key is old."""
    with transaction.atomic():
        purchase = _in_flight(org_id, lock=True)  # the purchase before the settings (lock order)
        if purchase is None or purchase.stripe_payment_intent_id:
            return None
        if purchase.updated_at > now - timedelta(seconds=settings.AUTO_TOPUP_RETRY_AFTER_SECONDS):
            return None  # another run may still be waiting for Stripe's answer
        if purchase.created_at < now - timedelta(seconds=settings.AUTO_TOPUP_RETRY_WINDOW_SECONDS):
            purchase.status = CreditPurchase.Status.FAILED
            purchase.failure_reason = "the charge never reached Stripe"
            purchase.save(update_fields=["status", "failure_reason", "updated_at"])
            record_audit_event(
                action="auto_topup.given_up",
                org_id=org_id,
                target_type="credit_purchase",
                target_id=purchase.pk,
                metadata={"created_at": purchase.created_at.isoformat()},
            )
            outcome.given_up.append(purchase.pk)
            return None
        row = AutoTopUpSettings.objects.select_related("org").get(org_id=org_id)
        if not row.enabled:
            return None
        purchase.save(update_fields=["updated_at"])  # this run is asking now
        return _Charge(purchase, row.org.stripe_customer_id, row.stripe_payment_method_id)


def _open_topup(*, org_id: str, now: Any, outcome: AutoTopUpRun) -> _Charge | None:
    """The purchase to charge now: an earlier one whose charge never reached Stripe, or a new
    one opened under the settings row's lock (in flight, threshold and cap checked there)."""
    if _in_flight(org_id) is not None:
        return _resume_in_flight(org_id=org_id, now=now, outcome=outcome)
    with transaction.atomic():
        row = (
            AutoTopUpSettings.objects.select_for_update(of=("self",))
            .select_related("org")
            .filter(org_id=org_id, enabled=True)
            .first()
        )
        if row is None or not row.org.stripe_customer_id or not row.stripe_payment_method_id:
            return None
        if _in_flight(org_id) is not None:
            return None  # another run opened one meanwhile
        pool = OrganizationCreditPool.objects.filter(org_id=org_id).first()
        available = pool.available_credits if pool else 0
        if available >= row.threshold_credits:
            return None
        quote = quote_purchase(credits=row.amount_credits)
        spent = auto_topup_spent_this_month(org_id=org_id, now=now)
        if spent + quote.amount > row.monthly_cap_usd:
            logger.info("auto top-up of %s skipped: monthly cap %s reached", org_id, row.monthly_cap_usd)
            return None
        purchase = CreditPurchase.objects.create(
            org_id=org_id,
            origin=CreditPurchase.Origin.AUTO_TOPUP,
            credits=quote.credits,
            amount=quote.amount,
            currency="USD",
        )
        record_audit_event(
            action="auto_topup.started",
            org_id=org_id,
            target_type="credit_purchase",
            target_id=purchase.pk,
            metadata={
                "available_credits": available,
                "threshold_credits": row.threshold_credits,
                "credits": quote.credits,
                "amount": str(quote.amount),
                "spent_this_month": str(spent),
            },
        )
    return _Charge(purchase, row.org.stripe_customer_id, row.stripe_payment_method_id)


def _charge(charge: _Charge, *, outcome: AutoTopUpRun) -> None:
    """The off-session PaymentIntent, confirmed at once. No lock is held here."""
    purchase = charge.purchase
    references = {"purchase_id": str(purchase.pk), "org_id": purchase.org_id, "origin": purchase.origin}
    params: dict[str, Any] = {
        "amount": cents(purchase.amount),
        "currency": purchase.currency.lower(),
        "customer": charge.customer,
        "payment_method": charge.payment_method,
        "confirm": True,
        "off_session": True,
        "description": f"Auto top-up: {millicredits_to_credits(purchase.credits).normalize():,f} credits",
        "metadata": references,
    }
    try:
        with stripe_charge_errors("payment intent create"):
            intent = stripe_client().v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"auto-topup-{purchase.pk}"},
            )
    except PaymentDeclined as exc:
        # Declined (or the bank wants the cardholder present): this attempt failed.
        with transaction.atomic():
            locked = CreditPurchase.objects.select_for_update().get(pk=purchase.pk)
            record_auto_topup_failure(locked, reason=exc.message, payment_intent=exc.payment_intent)
        outcome.declined.append(purchase.pk)
        return
    except BillingBackendUnavailable as exc:
        # Unknown whether Stripe charged: the purchase stays pending and the next run asks again
        # with the same idempotency key (Stripe answers with the same intent if it made one).
        CreditPurchase.objects.filter(pk=purchase.pk, status=CreditPurchase.Status.PENDING).update(
            failure_reason=f"Stripe unreachable: {exc.details.get('status')}"[:500], updated_at=timezone.now()
        )
        outcome.unreachable.append(purchase.pk)
        return
    with transaction.atomic():
        locked = CreditPurchase.objects.select_for_update().get(pk=purchase.pk)
        if not locked.stripe_payment_intent_id:  # the webhook may have been faster
            locked.stripe_payment_intent_id = intent.id
            locked.failure_reason = ""
            locked.save(update_fields=["stripe_payment_intent_id", "failure_reason", "updated_at"])
        if intent.status in ("requires_payment_method", "requires_action", "canceled"):
            record_auto_topup_failure(
                locked, reason=f"the payment needs the cardholder ({intent.status})", payment_intent=intent.id
            )
            outcome.declined.append(purchase.pk)
            return
    outcome.started.append(purchase.pk)
