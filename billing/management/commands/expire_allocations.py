"""Deactivate allocations past their expires_at; their unused credits return to the pool."""

import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from tqdm import tqdm

from billing.money import millicredits_to_credits
from billing.services.expiry import (
    ExpiredAllocation,
    Skipped,
    allocations_past_expiry,
    expire_allocation,
)

ACTOR = "command:expire_allocations"


class Command(BaseCommand):
    help = (
        "Expire every active allocation whose expires_at has passed: its unused credits go back "
        "to the pool (audited as allocation.expired). Allocations with credits on hold are left "
        "for the next run. The task billing.tasks.expire_allocations does the same on a schedule."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="list what would expire; change nothing")
        parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        due = list(allocations_past_expiry(now=now).select_related("user"))
        if options["dry_run"]:
            for allocation in due:
                unused = allocation.allocated_credits - allocation.used_credits
                held = f", {millicredits_to_credits(allocation.reserved_credits)} on hold (skipped)"
                self.stdout.write(
                    f"would expire allocation #{allocation.pk} "
                    f"{allocation.user.username}@{allocation.org_id} "
                    f"(expired {allocation.expires_at:%Y-%m-%d %H:%M}Z): "
                    f"{millicredits_to_credits(unused)} credits back to the pool"
                    f"{held if allocation.reserved_credits else ''}"
                )
            self.stdout.write(
                self.style.SUCCESS(f"Dry run: {len(due)} allocation(s) past expiry; nothing changed.")
            )
            return
        expired = 0
        returned = 0
        with_holds: list[int] = []
        progress = tqdm(
            due,
            unit="allocation",
            desc="Expiring",
            file=sys.stderr,
            disable=True if options["no_progress"] else None,
        )
        with progress:
            for allocation in progress:
                outcome = expire_allocation(allocation_id=allocation.pk, now=now, actor_label=ACTOR)
                if isinstance(outcome, ExpiredAllocation):
                    expired += 1
                    returned += outcome.returned_to_pool
                elif outcome is Skipped.HAS_HOLDS:
                    with_holds.append(allocation.pk)
        if with_holds:
            self.stdout.write(
                self.style.WARNING(
                    f"{len(with_holds)} allocation(s) still hold credits and were left for the next run: "
                    + ", ".join(f"#{pk}" for pk in with_holds)
                )
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Expired {expired} allocation(s); "
                f"{millicredits_to_credits(returned)} credits returned to pools."
            )
        )
