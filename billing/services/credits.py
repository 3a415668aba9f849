"""Adding credits to an organization's pool through the API: system admins grant them (or
record an off-line purchase); org admins buy them by card. The one place that rule lives."""

from dataclasses import dataclass
from decimal import Decimal

from billing.models import CreditPurchase
from billing.payments.purchases import start_credit_purchase
from billing.services import PoolChange, add_credits_to_pool
from organizations.models import User
from organizations.permissions import OrgAccess
from orgbilling.errors import ValidationFailed


@dataclass(frozen=True)
class CreditsGranted:
    change: PoolChange
    credits: int
    purchase_amount: Decimal | None


def credits_add(
    *,
    access: OrgAccess,
    actor: User,
    credits: int | None,
    amount_usd: Decimal | None,
    purchase_amount: Decimal | None,
    description: str | None,
) -> CreditsGranted | CreditPurchase:
    """A system admin grants ``credits`` at once (``CreditsGranted``); an org admin opens a card
    purchase (a pending ``CreditPurchase``). ``None`` means the field was not given; each side
    refuses the other side's fields (400)."""
    if not access.is_system_admin:
        return _buy(
            access=access,
            actor=actor,
            credits=credits,
            amount_usd=amount_usd,
            purchase_amount=purchase_amount,
            description=description,
        )
    if credits is None:
        raise ValidationFailed(
            "System admins grant credits; amount_usd is for card purchases.",
            details={"credits": "required"},
        )
    change = add_credits_to_pool(
        org_id=access.org.id,
        amount=credits,
        purchase_amount=purchase_amount,
        actor=actor,
        description=description or "",
    )
    return CreditsGranted(change=change, credits=credits, purchase_amount=purchase_amount)


def _buy(
    *,
    access: OrgAccess,
    actor: User,
    credits: int | None,
    amount_usd: Decimal | None,
    purchase_amount: Decimal | None,
    description: str | None,
) -> CreditPurchase:
    given = {"purchase_amount": purchase_amount, "description": description}
    refused = [name for name, value in given.items() if value is not None]
    if refused:
        raise ValidationFailed(
            "Only system admins record off-line purchases.",
            details={name: "not allowed" for name in refused},
        )
    return start_credit_purchase(org_id=access.org.id, actor=actor, credits=credits, amount_usd=amount_usd)
