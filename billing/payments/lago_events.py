"""What Lago tells us (webhooks and the invoice sync) written into ``org_billing_history``.

Every row is keyed so that the same fact arrives once whatever its route: an invoice is
``lago-invoice-<lago_id>`` whether the sync or ``invoice.created`` saw it first; a payment
outcome is ``lago-invoice-<lago_id>-payment-<status>``; a subscription start or termination is
keyed by our subscription row. Only a succeeded payment carries an amount (revenue counts it).
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.audit import record_audit_event
from billing.backends.base import BackendSubscription
from billing.clients.lago import cents_to_decimal, fetch_lago_invoices, lago_client, lago_time
from billing.errors import BillingBackendUnavailable, OrganizationNotFound
from billing.models import OrganizationSubscription, OrgBillingHistory
from billing.services.subscriptions import mark_subscription_active, plan_changes_on_commit
from organizations.models import Organization
from orgbilling.errors import ApplicationError, Conflict, ValidationFailed

logger = logging.getLogger(__name__)

INVOICE_FIELDS_KEPT = (
    "lago_id",
    "number",
    "invoice_type",
    "status",
    "payment_status",
    "issuing_date",
    "payment_due_date",
    "payment_overdue",
    "file_url",
    "voided_at",
    "updated_at",
)
PAYMENT_OUTCOMES = ("succeeded", "failed")
# How far along an invoice is, for events that carry the same (or no) updated_at: a mirrored
# row never moves back (Lago delivers out of order, and may replay an old event).
INVOICE_STATUS_RANK = {"draft": 0, "generating": 0, "pending": 0, "finalized": 1, "failed": 1, "voided": 2}
PAYMENT_STATUS_RANK = {"pending": 0, "failed": 1, "succeeded": 2}


def _required(obj: dict[str, Any], key: str, what: str) -> Any:
    value = obj.get(key)
    if value in (None, ""):
        raise ValidationFailed(f"The {what} has no {key}.", details={"field": key})
    return value


def _org_of(obj: dict[str, Any]) -> str:
    customer = obj.get("customer") or {}
    org_id = customer.get("external_id") or obj.get("external_customer_id")
    if not org_id:
        raise ValidationFailed(
            "The Lago object names no customer.", details={"field": "external_customer_id"}
        )
    if not Organization.objects.filter(pk=org_id).exists():
        raise OrganizationNotFound(details={"org_id": org_id})
    return str(org_id)


def _occurred(obj: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value:
            parsed = parse_datetime(str(value))  # a bare date (issuing_date) parses as midnight
            if parsed is not None:
                return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)
    return timezone.now()


def _upsert_row(
    *,
    external_id: str,
    org_id: str,
    defaults: dict[str, Any],
    mirror: tuple[str, ...],
    newer: Callable[[OrgBillingHistory], bool] | None = None,
) -> bool:
    """Create the history row once; on a later sighting only refresh the ``mirror`` fields
    (an invoice's status and details follow Lago), and only when ``newer(row)`` says the
    sighting is not older than what is stored. Returns whether the row was created."""
    row, created = OrgBillingHistory.objects.select_for_update(of=("self",)).get_or_create(
        external_id=external_id, defaults={"org_id": org_id, **defaults}
    )
    if created:
        return True
    if row.org_id != org_id:
        raise Conflict(
            "This Lago object belongs to another organization.", details={"external_id": external_id}
        )
    if newer is not None and not newer(row):
        logger.info("Lago sent an older state of %s; kept the stored one", external_id)
        return False
    changed = [name for name in mirror if getattr(row, name) != defaults[name]]
    if changed:
        for name in changed:
            setattr(row, name, defaults[name])
        row.save(update_fields=changed)
    return False


def _invoice_progress(metadata: dict[str, Any], status: str) -> tuple[int, int]:
    return (
        INVOICE_STATUS_RANK.get(status, 0),
        PAYMENT_STATUS_RANK.get(str(metadata.get("payment_status") or ""), 0),
    )


def _invoice_not_older(invoice: dict[str, Any]) -> Callable[[OrgBillingHistory], bool]:
    """Lago's ``updated_at`` decides; on a tie (or without it) the invoice must not go back in
    status or payment status."""
    incoming_at = lago_time(invoice.get("updated_at"))
    incoming = _invoice_progress(invoice, str(invoice.get("status") or ""))

    def not_older(row: OrgBillingHistory) -> bool:
        stored_at = lago_time((row.metadata or {}).get("updated_at"))
        if incoming_at is not None and stored_at is not None and incoming_at != stored_at:
            return incoming_at > stored_at
        return incoming >= _invoice_progress(row.metadata or {}, row.status)

    return not_older


def _invoice_defaults(invoice: dict[str, Any]) -> dict[str, Any]:
    number = invoice.get("number") or invoice["lago_id"]
    return {
        "event_type": OrgBillingHistory.EventType.INVOICE,
        "amount": cents_to_decimal(invoice.get("total_amount_cents")),
        "currency": (invoice.get("currency") or "USD")[:3],
        "status": str(invoice.get("status") or "")[:32],
        "description": f"Invoice {number}",
        "metadata": {key: invoice.get(key) for key in INVOICE_FIELDS_KEPT},
        "occurred_at": _occurred(invoice, "issuing_date", "created_at"),
    }


@dataclass
class InvoiceRecorded:
    invoice_created: bool = False
    payment_created: bool = False


def record_lago_invoice(*, invoice: dict[str, Any], org_id: str | None = None) -> InvoiceRecorded:
    """Mirror one Lago invoice (and its payment outcome, once per outcome) into the history."""
    lago_id = _required(invoice, "lago_id", "invoice")
    named = (invoice.get("customer") or {}).get("external_id")
    if org_id is not None and named and named != org_id:
        raise Conflict("The invoice belongs to another customer.", details={"lago_id": lago_id})
    org_id = org_id or _org_of(invoice)
    outcome = InvoiceRecorded()
    with transaction.atomic():
        outcome.invoice_created = _upsert_row(
            external_id=f"lago-invoice-{lago_id}",
            org_id=org_id,
            defaults=_invoice_defaults(invoice),
            mirror=("status", "amount", "metadata"),
            newer=_invoice_not_older(invoice),
        )
        payment_status = invoice.get("payment_status")
        if payment_status in PAYMENT_OUTCOMES:
            outcome.payment_created = _record_payment(invoice, org_id=org_id, payment_status=payment_status)
    return outcome


def _record_payment(invoice: dict[str, Any], *, org_id: str, payment_status: str) -> bool:
    number = invoice.get("number") or invoice["lago_id"]
    succeeded = payment_status == "succeeded"
    created = _upsert_row(
        external_id=f"lago-invoice-{invoice['lago_id']}-payment-{payment_status}",
        org_id=org_id,
        defaults={
            "event_type": OrgBillingHistory.EventType.PAYMENT,
            # Only money actually received is an amount; a failed attempt keeps it in metadata.
            "amount": cents_to_decimal(invoice.get("total_amount_cents")) if succeeded else None,
            "currency": (invoice.get("currency") or "USD")[:3],
            "status": payment_status,
            "description": f"Payment of invoice {number} {payment_status}",
            "metadata": {
                "lago_invoice_id": invoice["lago_id"],
                "number": number,
                "total_amount_cents": invoice.get("total_amount_cents"),
            },
            "occurred_at": timezone.now(),
        },
        mirror=(),
    )
    if created:
        record_audit_event(
            action=f"invoice.payment_{payment_status}",
            actor_label="lago",
            org_id=org_id,
            target_type="invoice",
            target_id=invoice["lago_id"],
            metadata={"number": number, "total_amount_cents": invoice.get("total_amount_cents")},
        )
    return created


def _our_subscription(subscription: dict[str, Any], org_id: str) -> OrganizationSubscription | None:
    external_id = subscription.get("external_id")
    if not external_id:
        return None
    return (
        OrganizationSubscription.objects.select_related("plan")
        .filter(org_id=org_id, lago_external_id=external_id)
        .first()
    )


def record_lago_subscription_started(*, subscription: dict[str, Any]) -> bool:
    """Lago started a subscription: a ``pending`` row of ours becomes active (its create call
    failed after Lago had done it); the start lands in the history once, whoever saw it first."""
    lago_id = _required(subscription, "lago_id", "subscription")
    org_id = _org_of(subscription)
    ours = _our_subscription(subscription, org_id)
    if ours is not None:
        if ours.status == OrganizationSubscription.Status.PENDING:
            # Our create call failed after Lago had done it: Lago's word completes it (no call
            # back to Lago needed; the retry task would get this same subscription).
            mark_subscription_active(  # grants the initial credits with the activation
                subscription_id=ours.pk,
                external=BackendSubscription(
                    external_id=str(lago_id),
                    period_start=_occurred(subscription, "current_billing_period_started_at", "started_at"),
                    period_end=lago_time(subscription.get("current_billing_period_ending_at")),
                ),
                external_id=str(subscription["external_id"]),
                backend_name="lago",
                actor_label="lago webhook",
            )
            return True
        external_id = f"subscription-{ours.pk}-started"
    else:
        external_id = f"lago-subscription-{lago_id}-started"
    with transaction.atomic():
        return _upsert_row(
            external_id=external_id,
            org_id=org_id,
            defaults={
                "event_type": OrgBillingHistory.EventType.SUBSCRIPTION_CHANGE,
                "amount": cents_to_decimal(_int_or_none(subscription.get("plan_amount_cents"))),
                "currency": (subscription.get("plan_amount_currency") or "USD")[:3],
                "status": "active",
                "description": f"Subscription to {subscription.get('plan_code')} started in Lago",
                "metadata": {
                    "plan_code": subscription.get("plan_code"),
                    "event": "started",
                    "lago_id": lago_id,
                },
                "occurred_at": _occurred(subscription, "started_at", "created_at"),
            },
            mirror=(),
        )


def record_lago_subscription_terminated(*, subscription: dict[str, Any]) -> bool:
    """Lago terminated a subscription: an active row of ours becomes ``terminated`` (one we
    canceled stays ``canceled``); the termination lands in the history once."""
    lago_id = _required(subscription, "lago_id", "subscription")
    org_id = _org_of(subscription)
    ours = _our_subscription(subscription, org_id)
    with transaction.atomic():
        if ours is not None:
            ours = OrganizationSubscription.objects.select_for_update().select_related("plan").get(pk=ours.pk)
            if ours.status in (
                OrganizationSubscription.Status.ACTIVE,
                OrganizationSubscription.Status.PENDING,
            ):
                previous = ours.status
                ours.status = OrganizationSubscription.Status.TERMINATED
                ours.canceled_at = _occurred(subscription, "terminated_at")
                ours.save(update_fields=["status", "canceled_at", "updated_at"])
                plan_changes_on_commit(ours.org_id)
                record_audit_event(
                    action="subscription.terminated",
                    actor_label="lago webhook",
                    org_id=org_id,
                    target_type="subscription",
                    target_id=ours.pk,
                    metadata={"from": previous, "lago_id": lago_id},
                )
        return _upsert_row(
            external_id=f"subscription-{ours.pk}-terminated"
            if ours
            else f"lago-subscription-{lago_id}-terminated",
            org_id=org_id,
            defaults={
                "event_type": OrgBillingHistory.EventType.SUBSCRIPTION_CHANGE,
                "amount": None,
                "currency": (subscription.get("plan_amount_currency") or "USD")[:3],
                "status": "terminated",
                "description": f"Subscription to {subscription.get('plan_code')} terminated in Lago",
                "metadata": {
                    "plan_code": subscription.get("plan_code"),
                    "event": "terminated",
                    "lago_id": lago_id,
                    "terminated_at": subscription.get("terminated_at"),
                },
                "occurred_at": _occurred(subscription, "terminated_at"),
            },
            mirror=(),
        )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class InvoiceSyncResult:
    organizations: int = 0
    invoices_seen: int = 0
    invoices_created: int = 0
    payments_created: int = 0
    failed_orgs: list[str] = field(default_factory=list)
    refused_invoices: list[str] = field(default_factory=list)


def orgs_to_sync(org_id: str | None = None) -> list[str]:
    """Organizations known to Lago (they have a Lago customer id), or the one asked for."""
    if org_id is not None:
        if not Organization.objects.filter(pk=org_id).exists():
            raise OrganizationNotFound(details={"org_id": org_id})
        return [org_id]
    return list(Organization.objects.exclude(lago_customer_id="").order_by("id").values_list("id", flat=True))


def sync_lago_invoices(
    *, org_ids: Iterable[str], on_org_done: Callable[[str], None] | None = None
) -> InvoiceSyncResult:
    """Pull every invoice of each organization from Lago (paged) into the history. Idempotent:
    a second run writes nothing new. An organization whose pages fail is reported and skipped."""
    client = lago_client()
    result = InvoiceSyncResult()
    for org_id in org_ids:
        result.organizations += 1
        try:
            for invoice in fetch_lago_invoices(client, org_id=org_id):
                result.invoices_seen += 1
                try:
                    recorded = record_lago_invoice(invoice=invoice, org_id=org_id)
                except ApplicationError as exc:  # not this org's, or unreadable: for ops to look at
                    logger.error("Lago invoice %s of %s refused: %s", invoice.get("lago_id"), org_id, exc)
                    result.refused_invoices.append(str(invoice.get("lago_id")))
                    continue
                result.invoices_created += recorded.invoice_created
                result.payments_created += recorded.payment_created
        except BillingBackendUnavailable:
            logger.warning("invoice sync of %s stopped: Lago unavailable", org_id)
            result.failed_orgs.append(org_id)
        if on_org_done is not None:
            on_org_done(org_id)
    return result
