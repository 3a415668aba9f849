"""Operational figures of the ledger, read at scrape time by ``/metrics``."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from billing.models import CreditReservation, ReconciliationRun
from billing.money import millicredits_to_credits


@dataclass(frozen=True)
class HoldCounts:
    open: int  # held now
    overdue: int  # held past expires_at: the expiry task has not released them yet
    expired: int  # released by the expiry task (the caller never settled)
    open_credits: Decimal  # credits held by the open holds


def hold_counts() -> HoldCounts:
    """Two index scans on (status, expires_at): settled and released holds are never counted."""
    held = CreditReservation.objects.filter(status=CreditReservation.Status.HELD).aggregate(
        open=Count("id"),
        overdue=Count("id", filter=Q(expires_at__lt=timezone.now())),
        millicredits=Sum("amount"),
    )
    expired = CreditReservation.objects.filter(status=CreditReservation.Status.EXPIRED).count()
    return HoldCounts(
        open=held["open"],
        overdue=held["overdue"],
        expired=expired,
        open_credits=millicredits_to_credits(held["millicredits"] or 0),
    )


def last_reconciliation_run() -> ReconciliationRun | None:
    return ReconciliationRun.objects.order_by("-finished_at", "-id").first()
