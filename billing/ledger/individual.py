"""A user's own credits: the balance that pays when they bill without an organization, and the
ledger (``IndividualCreditEntry``) of every change to its total.

Every change to the total goes through ``change_individual_total`` with the balance locked
(``lock_individual_balance``): one entry per change, keyed by ``external_id`` (a unique
column), so a replayed purchase, grant or migration writes nothing the second time.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from billing.audit import record_audit_event
from billing.ledger.locks import lock_individual_balance
from billing.models import IndividualCreditBalance, IndividualCreditEntry
from billing.money import validate_millicredits
from organizations.models import User
from orgbilling.errors import Conflict, ValidationFailed

Kind = IndividualCreditEntry.Kind


@dataclass(frozen=True)
class IndividualChange:
    balance: IndividualCreditBalance
    entry: IndividualCreditEntry
    replayed: bool  # the change was made before (same external_id): nothing was written now


def change_individual_total(
    *,
    balance: IndividualCreditBalance,
    kind: str,
    credits: int,
    external_id: str,
    actor: User | None = None,
    actor_label: str = "",
    reason: str = "",
    org_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> IndividualChange:
    """Add ``credits`` (negative: take them away) to the locked ``balance``'s total and append
    its ledger entry, unless an entry with ``external_id`` exists (then nothing changes). The
    caller holds the balance's lock, inside its transaction."""
    previous = IndividualCreditEntry.objects.filter(external_id=external_id).first()
    if previous is not None:
        if previous.user_id != balance.user_id or previous.credits != credits or previous.kind != kind:
            raise Conflict(
                "This key was already used for another change of individual credits.",
                details={"external_id": external_id},
            )
        return IndividualChange(balance=balance, entry=previous, replayed=True)
    if credits == 0:
        raise ValidationFailed("A change of individual credits cannot be zero.", details={"credits": 0})
    balance.total_credits += credits
    balance.save(update_fields=["total_credits", "updated_at"])
    entry = IndividualCreditEntry.objects.create(
        user_id=balance.user_id,
        kind=kind,
        credits=credits,
        total_after=balance.total_credits,
        external_id=external_id,
        org_id=org_id,
        actor=actor,
        actor_label=actor_label or ("" if actor else "system"),
        reason=reason[:500],
        metadata=metadata or {},
    )
    record_audit_event(
        action=f"individual.{kind}" if kind != Kind.GRANT else "individual.credits_added",
        actor=actor,
        actor_label=actor_label,
        org_id=org_id,
        target_type="individual_balance",
        target_id=balance.user.username,
        metadata={
            "credits": credits,
            "total_after": balance.total_credits,
            "entry_id": entry.pk,
            "reason": reason,
            **(metadata or {}),
        },
    )
    return IndividualChange(balance=balance, entry=entry, replayed=False)


def add_individual_credits(
    *,
    user: User,
    amount: int,
    actor: User | None = None,
    actor_label: str = "",
    reason: str = "",
    external_id: str | None = None,
) -> IndividualCreditBalance:
    """Grant ``amount`` millicredits to a user's own balance (the no-organization fallback):
    a ledger entry of kind ``grant``, audited as ``individual.credits_added``."""
    return grant_individual_credits(
        user=user, amount=amount, actor=actor, actor_label=actor_label, reason=reason, external_id=external_id
    ).balance


def grant_individual_credits(
    *,
    user: User,
    amount: int,
    actor: User | None = None,
    actor_label: str = "",
    reason: str = "",
    external_id: str | None = None,
) -> IndividualChange:
    """A staff grant of ``amount`` millicredits to ``user``'s individual balance."""
    amount = validate_millicredits(amount)
    with transaction.atomic():
        balance = lock_individual_balance(user.pk)
        balance.user = user
        return change_individual_total(
            balance=balance,
            kind=Kind.GRANT,
            credits=amount,
            external_id=external_id or f"individual-grant-{uuid.uuid4()}",
            actor=actor,
            actor_label=actor_label,
            reason=reason,
        )
