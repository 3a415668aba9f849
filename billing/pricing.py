"""Prices → millicredits. Every cost rounds *up* to the next millicredit, so a call is never
charged less than it consumed; all arithmetic is ``Decimal``."""

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import cache
from typing import Any

from billing.errors import UnknownModel
from billing.models import ModelPrice
from billing.money import MILLICREDITS_PER_CREDIT
from orgbilling.db import Columns, fetch_instances

TOKENS_PER_PRICE_UNIT = 1_000_000


def _to_millicredits(credits: Decimal) -> int:
    return int((credits * MILLICREDITS_PER_CREDIT).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class PriceSnapshot:
    """The price a call was charged at, stored with its attribution row."""

    model: str
    input_credits_per_million: Decimal
    output_credits_per_million: Decimal
    image_credits: Decimal
    max_output_tokens: int | None = None  # the model's output cap, priced when a call sets none

    def as_metadata(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_credits_per_million": str(self.input_credits_per_million),
            "output_credits_per_million": str(self.output_credits_per_million),
            "image_credits": str(self.image_credits),
        }

    def token_cost(self, *, input_tokens: int, output_tokens: int) -> int:
        """Millicredits for a call's tokens."""
        credits = (
            Decimal(input_tokens) * self.input_credits_per_million
            + Decimal(output_tokens) * self.output_credits_per_million
        ) / TOKENS_PER_PRICE_UNIT
        return _to_millicredits(credits)

    def image_cost(self, *, count: int) -> int:
        return _to_millicredits(Decimal(count) * self.image_credits)


_PRICE = Columns(ModelPrice, "p")


@cache
def _active_price_sql() -> str:
    return f"SELECT {_PRICE.sql} FROM model_prices p WHERE p.model = %(model)s AND p.is_active"


def price_for(model: str, *, size: str | None = None, quality: str | None = None) -> PriceSnapshot:
    """The active price of ``model`` now (``unknown_model`` if none); ``size``/``quality`` pick
    an image price from ``image_prices`` when one is set."""
    rows = fetch_instances(_active_price_sql(), {"model": model}, _PRICE)
    if not rows:
        raise UnknownModel(details={"model": model})
    (price,) = rows[0]
    image = price.image_credits
    key = f"{size}/{quality or 'standard'}" if size else None
    if key and key in price.image_prices:
        image = Decimal(str(price.image_prices[key]))
    return PriceSnapshot(
        model,
        price.input_credits_per_million,
        price.output_credits_per_million,
        image,
        price.max_output_tokens,
    )


def ensure_model_price(
    *, model: str, input_per_million: Decimal, output_per_million: Decimal, image: Decimal = Decimal(0)
) -> ModelPrice:
    """Create a price for ``model`` if it has none; an existing (admin-edited) price is kept."""
    price, _ = ModelPrice.objects.get_or_create(
        model=model,
        defaults={
            "input_credits_per_million": input_per_million,
            "output_credits_per_million": output_per_million,
            "image_credits": image,
        },
    )
    return price
