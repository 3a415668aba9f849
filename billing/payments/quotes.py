"""The price of a credit purchase: credits (millicredits) to dollars and back, within the
configured bounds. Shared by Checkout purchases and auto top-ups, so neither imports the other
for it."""

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from django.conf import settings

from billing.money import MILLICREDITS_PER_CREDIT, USD_QUANTUM, millicredits_to_credits, parse_usd
from orgbilling.errors import InvalidAmount, ValidationFailed

__all__ = ["Quote", "cents", "quote_purchase"]


@dataclass(frozen=True)
class Quote:
    credits: int  # millicredits
    amount: Decimal  # USD


def quote_purchase(*, credits: int | None = None, amount_usd: Decimal | None = None) -> Quote:
    """Price a purchase given credits (millicredits) or dollars; exactly one of them."""
    if (credits is None) == (amount_usd is None):
        raise ValidationFailed(
            "Give either credits or amount_usd.", details={"fields": ["credits", "amount_usd"]}
        )
    price = settings.CREDIT_PRICE_USD
    if credits is not None:
        amount = Decimal(credits) * price / MILLICREDITS_PER_CREDIT
        if amount != amount.quantize(USD_QUANTUM):
            raise InvalidAmount(
                "Credits must cost a whole number of cents.",
                details={"credits": str(millicredits_to_credits(credits)), "credit_price_usd": str(price)},
            )
        amount = amount.quantize(USD_QUANTUM)
    else:
        amount = parse_usd(amount_usd)  # type: ignore[arg-type]
        exact = amount / price * MILLICREDITS_PER_CREDIT
        credits = int(exact.to_integral_value(rounding=ROUND_DOWN))
        if Decimal(credits) != exact:
            raise InvalidAmount(
                "This amount does not buy a whole number of millicredits.",
                details={"amount_usd": str(amount), "credit_price_usd": str(price)},
            )
    if not settings.CREDIT_PURCHASE_MIN_USD <= amount <= settings.CREDIT_PURCHASE_MAX_USD:
        raise InvalidAmount(
            "A card purchase must be between the minimum and the maximum amount.",
            details={
                "amount_usd": str(amount),
                "min_usd": str(settings.CREDIT_PURCHASE_MIN_USD),
                "max_usd": str(settings.CREDIT_PURCHASE_MAX_USD),
            },
        )
    return Quote(credits=credits, amount=amount)


def cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())
