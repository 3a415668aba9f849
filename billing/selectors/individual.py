"""A user's own credits as they see them: the balance, recent purchases and ledger entries."""

from dataclasses import dataclass

from billing.models import IndividualCreditBalance, IndividualCreditEntry, IndividualCreditPurchase
from organizations.models import User

RECENT = 20


@dataclass(frozen=True)
class IndividualCredits:
    total_credits: int
    used_credits: int
    reserved_credits: int
    available_credits: int
    purchases: list[IndividualCreditPurchase]
    entries: list[IndividualCreditEntry]


def individual_credits_of(*, user: User, recent: int = RECENT) -> IndividualCredits:
    """``user``'s individual balance (zeros when they have none) and their ``recent`` latest
    purchases and ledger entries, newest first. Only the user's own rows."""
    balance = IndividualCreditBalance.objects.filter(user=user).first()
    total, used, reserved = (
        (balance.total_credits, balance.used_credits, balance.reserved_credits) if balance else (0, 0, 0)
    )
    return IndividualCredits(
        total_credits=total,
        used_credits=used,
        reserved_credits=reserved,
        available_credits=total - used - reserved,
        purchases=recent_individual_purchases(user=user, recent=recent),
        entries=list(
            IndividualCreditEntry.objects.filter(user=user)
            .select_related("org")
            .order_by("-created_at", "-id")[:recent]
        ),
    )


def recent_individual_purchases(*, user: User, recent: int = RECENT) -> list[IndividualCreditPurchase]:
    """``user``'s ``recent`` latest card purchases of individual credits, newest first (one query)."""
    return list(IndividualCreditPurchase.objects.filter(user=user).order_by("-created_at", "-id")[:recent])
