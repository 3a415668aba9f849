"""Prices → millicredits. Every cost rounds *up* to the next millicredit, so a call is never
charged less than it consumed; all arithmetic is ``Decimal``."""

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import cache
from typing import Any

from billing.call_usage import Usage
from billing.errors import UnknownModel, UnpricedImageOption
from billing.models import ModelPrice
from billing.money import MILLICREDITS_PER_CREDIT
from orgbilling.db import Columns, fetch_instances

TOKENS_PER_PRICE_UNIT = 1_000_000


def _to_millicredits(credits: Decimal) -> int:
    return int((credits * MILLICREDITS_PER_CREDIT).to_integral_value(rounding=ROUND_CEILING))


# The optional per-million prices of a model, each falling back to a plain one when unset.
PART_PRICES = {
    "cache_read_credits_per_million": "input_credits_per_million",
    "cache_write_credits_per_million": "input_credits_per_million",
    "audio_input_credits_per_million": "input_credits_per_million",
    "reasoning_credits_per_million": "output_credits_per_million",
    "audio_output_credits_per_million": "output_credits_per_million",
}


@dataclass(frozen=True)
class PriceSnapshot:
    """The price a call was charged at, taken when its hold is taken and stored with its
    attribution row: a price edited while the call runs does not change what it is charged."""

    model: str
    input_credits_per_million: Decimal
    output_credits_per_million: Decimal
    image_credits: Decimal
    max_output_tokens: int | None = None  # the model's output cap, priced when a call sets none
    cache_read_credits_per_million: Decimal | None = None  # None: the input price
    cache_write_credits_per_million: Decimal | None = None  # None: the input price
    audio_input_credits_per_million: Decimal | None = None  # None: the input price
    reasoning_credits_per_million: Decimal | None = None  # None: the output price
    audio_output_credits_per_million: Decimal | None = None  # None: the output price

    def as_metadata(self) -> dict[str, Any]:
        parts = {name: str(getattr(self, name)) for name in PART_PRICES if getattr(self, name) is not None}
        return {
            "model": self.model,
            "input_credits_per_million": str(self.input_credits_per_million),
            "output_credits_per_million": str(self.output_credits_per_million),
            "image_credits": str(self.image_credits),
            **parts,
        }

    @classmethod
    def from_metadata(cls, price: dict[str, Any]) -> "PriceSnapshot":
        """The snapshot ``as_metadata`` wrote (older records lack the part prices)."""

        def part(name: str) -> Decimal | None:
            return None if price.get(name) is None else Decimal(price[name])

        return cls(
            model=price["model"],
            input_credits_per_million=Decimal(price["input_credits_per_million"]),
            output_credits_per_million=Decimal(price["output_credits_per_million"]),
            image_credits=Decimal(price["image_credits"]),
            cache_read_credits_per_million=part("cache_read_credits_per_million"),
            cache_write_credits_per_million=part("cache_write_credits_per_million"),
            audio_input_credits_per_million=part("audio_input_credits_per_million"),
            reasoning_credits_per_million=part("reasoning_credits_per_million"),
            audio_output_credits_per_million=part("audio_output_credits_per_million"),
        )

    def rate(self, name: str) -> Decimal:
        """Credits per million of a part (``PART_PRICES``), or of the plain tokens it falls back to."""
        value = getattr(self, name)
        if value is None:
            value = getattr(self, PART_PRICES[name])
        assert isinstance(value, Decimal)
        return value

    def token_cost(self, *, input_tokens: int, output_tokens: int) -> int:
        """Millicredits for plain input and output tokens."""
        return self.usage_cost(Usage(input_tokens, output_tokens, "upstream"))

    def usage_cost(self, usage: Usage) -> int:
        """Millicredits for a call's usage: each part of the totals at its own price, the rest
        of each total at the plain price (``billing.call_usage``); one rounding, up, at the end."""
        # Parts beyond their total (a Usage not built by consistent_usage) are all charged.
        plain_input = max(
            0, usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens - usage.audio_input_tokens
        )
        plain_output = max(0, usage.output_tokens - usage.reasoning_tokens - usage.audio_output_tokens)
        per_million = (
            Decimal(plain_input) * self.input_credits_per_million
            + Decimal(usage.cached_tokens) * self.rate("cache_read_credits_per_million")
            + Decimal(usage.cache_write_tokens) * self.rate("cache_write_credits_per_million")
            + Decimal(usage.audio_input_tokens) * self.rate("audio_input_credits_per_million")
            + Decimal(plain_output) * self.output_credits_per_million
            + Decimal(usage.reasoning_tokens) * self.rate("reasoning_credits_per_million")
            + Decimal(usage.audio_output_tokens) * self.rate("audio_output_credits_per_million")
        )
        return _to_millicredits(per_million / TOKENS_PER_PRICE_UNIT)

    def worst_case_cost(self, *, input_tokens: int, output_tokens: int) -> int:
        """An upper bound of ``usage_cost`` for these totals, however the upstream splits them:
        every input token at the dearest input rate, every output token at the dearest output
        rate. What a hold reserves."""
        input_rate = max(
            self.input_credits_per_million,
            self.rate("cache_read_credits_per_million"),
            self.rate("cache_write_credits_per_million"),
            self.rate("audio_input_credits_per_million"),
        )
        output_rate = max(
            self.output_credits_per_million,
            self.rate("reasoning_credits_per_million"),
            self.rate("audio_output_credits_per_million"),
        )
        per_million = Decimal(input_tokens) * input_rate + Decimal(output_tokens) * output_rate
        return _to_millicredits(per_million / TOKENS_PER_PRICE_UNIT)

    def image_cost(self, *, count: int) -> int:
        return _to_millicredits(Decimal(count) * self.image_credits)


def image_price_key(size: str | None, quality: str | None) -> str | None:
    """The ``image_prices`` key of a request's size and quality (``"1024x1024/hd"``; quality
    ``standard`` when unset), or None for a request that names neither (``image_credits``)."""
    if size is None and quality is None:
        return None
    return f"{size or 'default'}/{quality or 'standard'}"


_PRICE = Columns(ModelPrice, "p")


@cache
def _active_price_sql() -> str:
    return f"SELECT {_PRICE.sql} FROM model_prices p WHERE p.model = %(model)s AND p.is_active"


def price_for(model: str, *, size: str | None = None, quality: str | None = None) -> PriceSnapshot:
    """The active price of ``model`` now (``unknown_model`` if none). An image request naming
    a size or quality is priced from ``image_prices["size/quality"]``; one with no price there is
    refused (``unpriced_image_option``), before anything is held or sent upstream."""
    return price_of(model, active_price(model), size=size, quality=quality)


def active_price(model: str) -> ModelPrice | None:
    """The active price row of ``model``, or None (one prepared read)."""
    rows = fetch_instances(_active_price_sql(), {"model": model}, _PRICE)
    return rows[0][0] if rows else None


def price_of(
    model: str, price: ModelPrice | None, *, size: str | None = None, quality: str | None = None
) -> PriceSnapshot:
    """``price_for`` from the row ``active_price`` read (None: ``unknown_model``)."""
    if price is None:
        raise UnknownModel(details={"model": model})
    image = price.image_credits
    key = image_price_key(size, quality)
    if key is not None:
        listed = price.image_prices.get(key) if isinstance(price.image_prices, dict) else None
        if isinstance(listed, bool) or not isinstance(listed, (int, float)) or listed < 0:
            raise UnpricedImageOption(
                details={
                    "model": model,
                    "size": size,
                    "quality": quality,
                    "priced": sorted(price.image_prices or {}),
                }
            )
        image = Decimal(str(listed))
    return PriceSnapshot(
        model,
        price.input_credits_per_million,
        price.output_credits_per_million,
        image,
        price.max_output_tokens,
        cache_read_credits_per_million=price.cache_read_credits_per_million,
        cache_write_credits_per_million=price.cache_write_credits_per_million,
        audio_input_credits_per_million=price.audio_input_credits_per_million,
        reasoning_credits_per_million=price.reasoning_credits_per_million,
        audio_output_credits_per_million=price.audio_output_credits_per_million,
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
