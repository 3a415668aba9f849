"""Writes of model prices: the refresh from the maintained price data (``sync_model_prices``,
from ``billing.clients.genai_prices``) and the admin's edits (``edit_model_price``), which mark
a row as overridden so that a refresh never clobbers it.

A price change applies to calls held after it: a call's price is taken when its hold is taken
(``billing.pricing.PriceSnapshot``) and stored on its attribution row, which no price change
rewrites.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction

from billing.audit import record_audit_event
from billing.clients.genai_prices import FIELDS, CataloguePrice
from billing.models import ModelPrice
from organizations.models import User

PRICE_FIELDS = tuple(FIELDS)


@dataclass(frozen=True)
class PriceChange:
    model: str
    # "create", "update", "unchanged", "overridden" (an admin's price, left alone), "skipped"
    action: str
    changes: dict[str, tuple[Decimal | None, Decimal | None]] = field(default_factory=dict)
    note: str = ""


def _differences(
    row: ModelPrice | None, entry: CataloguePrice
) -> dict[str, tuple[Decimal | None, Decimal | None]]:
    return {
        name: (None if row is None else getattr(row, name), entry.prices[name])
        for name in PRICE_FIELDS
        if row is None or getattr(row, name) != entry.prices[name]
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _sync_one(entry: CataloguePrice, *, dry_run: bool) -> PriceChange:
    if entry.skipped:
        return PriceChange(entry.model, "skipped", note=entry.skipped)
    with transaction.atomic():
        row = ModelPrice.objects.select_for_update(of=("self",)).filter(model=entry.model).first()
        if row is not None and row.price_overridden:
            return PriceChange(entry.model, "overridden", _differences(row, entry))
        changes = _differences(row, entry)
        if not changes:
            return PriceChange(entry.model, "unchanged")
        action = "create" if row is None else "update"
        if dry_run:
            return PriceChange(entry.model, action, changes)
        if row is None:
            # Not callable until an operator activates it: a price alone does not open a model.
            row = ModelPrice(model=entry.model, is_active=False)
        for name in PRICE_FIELDS:
            setattr(row, name, entry.prices[name])
        row.price_source = entry.source
        row.save()
        record_audit_event(
            action=f"model_price.sync_{action}",
            actor_label="sync_model_prices",
            target_type="model_price",
            target_id=row.pk,
            metadata={
                "model": entry.model,
                "source": entry.source,
                "changes": {name: [_text(old), _text(new)] for name, (old, new) in changes.items()},
            },
        )
    return PriceChange(entry.model, action, changes)


def sync_model_prices(
    *, catalogue: Iterable[CataloguePrice], dry_run: bool = False, step: Callable[[], None] = lambda: None
) -> list[PriceChange]:
    """Bring ``ModelPrice`` to ``catalogue``'s prices: create missing models (inactive), update
    changed prices, leave overridden rows (``price_overridden``) and unchanged ones alone. Each
    row in its own transaction, so a second run changes nothing (idempotent). A model listed
    twice (several providers) takes its first listing. ``dry_run``: only the differences.
    ``step`` is called once per catalogue entry (a progress bar)."""
    outcome: list[PriceChange] = []
    seen: set[str] = set()
    for entry in catalogue:
        if entry.model in seen:
            outcome.append(PriceChange(entry.model, "skipped", note=f"listed again by {entry.provider}"))
        else:
            seen.add(entry.model)
            outcome.append(_sync_one(entry, dry_run=dry_run))
        step()
    return outcome


def edit_model_price(*, price: ModelPrice, changed: Iterable[str], actor: User) -> ModelPrice:
    """Save an admin's edit of ``price``. An edit of a price marks the row overridden (a refresh
    leaves it alone from then on) unless the same edit clears the flag on purpose."""
    changed = set(changed)
    if changed & {*PRICE_FIELDS, "image_credits", "image_prices"} and "price_overridden" not in changed:
        price.price_overridden = True
    with transaction.atomic():
        price.save()
        record_audit_event(
            action="model_price.edit",
            actor=actor,
            target_type="model_price",
            target_id=price.pk,
            metadata={"model": price.model, "changed": sorted(changed), "overridden": price.price_overridden},
        )
    return price
