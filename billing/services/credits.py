"""Adding credits to an organization's pool through the API: system admins grant them (or
record an off-line purchase); org admins buy them by card. The one place that rule lives."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.models import CreditPurchase
from billing.models.grants import DEFAULT_GRANT_PRIORITY
from billing.payments.purchases import start_credit_purchase
from billing.services import PoolChange, add_credits_to_pool
from organizations.models import User
from organizations.permissions import OrgAccess
from orgbilling.errors import ValidationFailed


@dataclass(frozen=True)
class GrantTerms:
    """System admins' terms for the grant the credits enter as (None: not given)."""

    expires_at: datetime | None = None
    priority: int | None = None
    source: str | None = None

    def given(self) -> list[str]:
        return [name for name in ("expires_at", "priority", "source") if getattr(self, name) is not None]


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
    grant_terms: GrantTerms | None = None,
) -> CreditsGranted | CreditPurchase:
    """A system admin grants ``credits`` at once (``CreditsGranted``); an org admin opens a card
    purchase (a pending ``CreditPurchase``). ``None`` means the field was not given; each side
    refuses the other side's fields (400)."""
    terms = grant_terms or GrantTerms()
    if not access.is_system_admin:
        if terms.given():
            raise ValidationFailed(
                "Only system admins set a grant's expiry, priority or source.",
                details={name: "not allowed" for name in terms.given()},
            )
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
        source=terms.source,
        expires_at=terms.expires_at,
        priority=DEFAULT_GRANT_PRIORITY if terms.priority is None else terms.priority,
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
