"""Recompute the daily usage rollups (UsageDailyRollup) from the attribution ledger."""

import argparse
import sys
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from billing.services.rollups import default_days, iter_rollup_usage, rollup_batch_count


def iso_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "Recompute UsageDailyRollup for a range of UTC days (default: yesterday and today). "
        "Idempotent: a day's rows are replaced by a fresh aggregate of the ledger."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", type=iso_day, help="first day to recompute (YYYY-MM-DD, UTC)")
        parser.add_argument("--until", type=iso_day, help="last day to recompute (default: today, UTC)")
        parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        default_first, today = default_days()
        first = options["since"] or default_first
        last = options["until"] or today
        if last < first:
            raise CommandError(f"validation_error: --until {last} is before --since {first}")
        rows = 0
        progress = tqdm(
            total=rollup_batch_count(),
            unit="batch",
            desc="Rolling up",
            file=sys.stderr,
            disable=True if options["no_progress"] else None,
        )
        with progress:
            for batch in iter_rollup_usage(first_day=first, last_day=last):
                rows += batch.rows
                progress.update(1)
        self.stdout.write(self.style.SUCCESS(f"Rolled up {first} to {last}: {rows} rollup row(s) written."))
