"""Seed and refresh ModelPrice from the price data shipped by the pinned genai-prices package."""

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from billing.clients.genai_prices import catalogue, catalogue_size, provider_ids
from billing.management.commands._common import run_service
from billing.services.model_prices import sync_model_prices

DEFAULT_PROVIDERS = ["openai", "anthropic"]


class Command(BaseCommand):
    help = (
        "Create or update model prices from genai-prices (offline: the data the pinned package "
        "ships). New models are created inactive; prices an admin edited are never overwritten. "
        "Idempotent."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--provider",
            action="append",
            dest="providers",
            help=f"a genai-prices provider id, repeatable (default: {' '.join(DEFAULT_PROVIDERS)})",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the differences, write nothing")
        parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        providers = options["providers"] or DEFAULT_PROVIDERS
        unknown = sorted(set(providers) - set(provider_ids()))
        if unknown:
            raise CommandError(f"validation_error: unknown provider(s) {', '.join(unknown)}")
        progress = tqdm(
            total=catalogue_size(providers=providers),
            unit="model",
            desc="Syncing prices",
            file=sys.stderr,
            disable=True if options["no_progress"] else None,
        )
        with progress:
            outcome = run_service(
                sync_model_prices,
                catalogue=catalogue(providers=providers),
                dry_run=options["dry_run"],
                step=lambda: progress.update(1),
            )
        counts: dict[str, int] = {}
        for change in outcome:
            counts[change.action] = counts.get(change.action, 0) + 1
            if change.action in ("create", "update", "overridden"):
                diff = ", ".join(f"{name}: {old} -> {new}" for name, (old, new) in change.changes.items())
                self.stdout.write(f"{change.action:>10} {change.model}: {diff or '-'}")
        summary = ", ".join(f"{counts[action]} {action}" for action in sorted(counts))
        prefix = "Dry run (nothing written)" if options["dry_run"] else "Synced"
        self.stdout.write(self.style.SUCCESS(f"{prefix}: {summary or 'nothing'}."))
