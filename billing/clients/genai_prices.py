"""Our one wrapper of ``genai-prices`` (pinned in requirements.txt): the prices it ships, read
offline from the package's own data (never fetched over the network), converted to our units —
credits per million tokens (1 credit = $0.01), rounded up to the third decimal our prices keep,
so a synced price is never below the provider's. Nothing here touches the database.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

import genai_prices
from genai_prices import types
from genai_prices.data_snapshot import get_snapshot

CREDITS_PER_USD = 100
PLACES = Decimal("0.001")  # ModelPrice's decimal_places

# Our price fields ← genai-prices' price keys (USD per million tokens).
FIELDS = {
    "input_credits_per_million": "input_mtok",
    "output_credits_per_million": "output_mtok",
    "cache_read_credits_per_million": "cache_read_mtok",
    "cache_write_credits_per_million": "cache_write_mtok",
    "audio_input_credits_per_million": "input_audio_mtok",
    "audio_output_credits_per_million": "output_audio_mtok",
    "reasoning_credits_per_million": "output_reasoning_mtok",
}
REQUIRED = ("input_credits_per_million", "output_credits_per_million")


@dataclass(frozen=True)
class CataloguePrice:
    """One model's prices in force at a time, in credits per million (None: not priced)."""

    model: str
    provider: str
    prices: dict[str, Decimal | None]
    skipped: str | None = None  # why it cannot be synced (tiered prices, no input/output price)

    @property
    def source(self) -> str:
        return f"genai-prices {genai_prices.__version__} {self.provider}/{self.model}"


def _credits(usd_per_million: Decimal) -> Decimal:
    return (usd_per_million * CREDITS_PER_USD).quantize(PLACES, rounding=ROUND_CEILING)


def _read(provider: types.Provider, model: types.ModelInfo, at: datetime) -> CataloguePrice:
    listed = model.get_prices(at)
    prices: dict[str, Decimal | None] = {}
    for field, key in FIELDS.items():
        value = getattr(listed, key, None)
        if isinstance(value, types.TieredPrices):
            # Priced by the prompt's size: one per-million price would undercharge a long prompt.
            return CataloguePrice(model.id, provider.id, {}, skipped=f"tiered {key}")
        prices[field] = None if value is None else _credits(Decimal(value))
    if any(prices[field] is None for field in REQUIRED):
        return CataloguePrice(model.id, provider.id, {}, skipped="no input or output token price")
    return CataloguePrice(model.id, provider.id, prices)


def provider_ids() -> list[str]:
    return [provider.id for provider in get_snapshot().providers]


def catalogue(*, providers: list[str], at: datetime | None = None) -> Iterator[CataloguePrice]:
    """Every model of ``providers`` (in that order) with its prices in force at ``at`` (now)."""
    at = at or datetime.now(tz=UTC)
    by_id = {provider.id: provider for provider in get_snapshot().providers}
    for provider_id in providers:
        for model in by_id[provider_id].models:
            yield _read(by_id[provider_id], model, at)


def catalogue_size(*, providers: list[str]) -> int:
    by_id = {provider.id: provider for provider in get_snapshot().providers}
    return sum(len(by_id[provider_id].models) for provider_id in providers)
