"""A user's own credits: the balance that pays when they bill without an organization."""

from django.db import transaction

from billing.audit import record_audit_event
from billing.ledger.locks import lock_individual_balance
from billing.models import IndividualCreditBalance
from billing.money import validate_millicredits
from organizations.models import User


def add_individual_credits(
    *, user: User, amount: int, actor: User | None = None, actor_label: str = ""
) -> IndividualCreditBalance:
    """Add ``amount`` millicredits to a user's own balance (the no-organization fallback)."""
    amount = validate_millicredits(amount)
    with transaction.atomic():
        balance = lock_individual_balance(user.pk)
        balance.total_credits += amount
        balance.save(update_fields=["total_credits", "updated_at"])
        record_audit_event(
            action="individual.credits_added",
            actor=actor,
            actor_label=actor_label,
            target_type="individual_balance",
            target_id=user.username,
            metadata={"credits": amount, "total_after": balance.total_credits},
        )
    return balance
