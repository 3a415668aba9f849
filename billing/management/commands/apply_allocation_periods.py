"""Apply the period boundaries (reset or refill) of recurring allocations that are due."""

import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from tqdm import tqdm

from billing.money import millicredits_to_credits
from billing.services.periods import (
    PeriodSkipped,
    allocations_with_due_periods,
    apply_allocation_periods_for,
    due_boundaries,
)

ACTOR = "command:apply_allocation_periods"


class Command(BaseCommand):
    help = (
        "Apply every due period boundary of recurring allocations, each exactly once (missed ones "
        "in order): reset or refill to the period amount, audited as allocation.period_applied. "
        "The task billing.tasks.apply_allocation_periods does the same every minute."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="list what is due; change nothing")
        parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        due = list(allocations_with_due_periods(now=now).select_related("user"))
        if options["dry_run"]:
            for allocation in due:
                boundaries = due_boundaries(allocation, now)
                self.stdout.write(
                    f"would apply {len(boundaries)} {allocation.period} boundary(ies) "
                    f"({allocation.period_mode}) to allocation #{allocation.pk} "
                    f"{allocation.user.username}@{allocation.org_id}, the first at "
                    f"{boundaries[0]:%Y-%m-%d %H:%M}Z"
                )
            self.stdout.write(
                self.style.SUCCESS(f"Dry run: {len(due)} allocation(s) with due periods; nothing changed.")
            )
            return
        self._apply(due, now, no_progress=options["no_progress"])

    def _apply(self, due: list[Any], now: Any, *, no_progress: bool) -> None:
        boundaries = shortfall = 0
        skipped: dict[int, str] = {}
        progress = tqdm(
            due, unit="allocation", desc="Periods", file=sys.stderr, disable=True if no_progress else None
        )
        with progress:
            for allocation in progress:
                outcome = apply_allocation_periods_for(
                    allocation_id=allocation.pk, now=now, actor_label=ACTOR
                )
                if isinstance(outcome, PeriodSkipped):
                    skipped[allocation.pk] = outcome
                    continue
                boundaries += len(outcome.rows)
                shortfall += outcome.shortfall
        if skipped:
            self.stdout.write(
                self.style.WARNING(
                    "skipped: " + ", ".join(f"#{pk} ({reason})" for pk, reason in sorted(skipped.items()))
                )
            )
        if shortfall:
            self.stdout.write(
                self.style.WARNING(
                    f"{millicredits_to_credits(shortfall)} credits short: the source lacked them."
                )
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Applied {boundaries} period boundary(ies) to {len(due) - len(skipped)} allocation(s)."
            )
        )
