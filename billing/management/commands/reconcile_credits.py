"""Check every cross-row ledger invariant; print each drift; exit non-zero on any."""

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from billing.selectors.reconciliation import (
    BATCH_SIZE,
    Drift,
    batched,
    find_individual_drifts,
    find_org_drifts,
    org_ids_to_check,
)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class Command(BaseCommand):
    help = "Reconcile pools, allocations, reservations and the attribution ledger. Exit 1 on drift."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", dest="org_id", help="check one organization only")
        parser.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE)
        parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        org_id = options["org_id"]
        org_ids = org_ids_to_check(org_id)
        if org_id is not None and not org_ids:
            raise CommandError(f"organization_not_found: {org_id!r} has no credit pool")
        drifts: list[Drift] = []
        progress = tqdm(
            total=len(org_ids),
            unit="org",
            desc="Reconciling",
            file=sys.stderr,
            disable=True if options["no_progress"] else None,
        )
        with progress:
            for batch in batched(org_ids, options["batch_size"]):
                drifts.extend(find_org_drifts(batch))
                progress.update(len(batch))
        if org_id is None:
            drifts.extend(find_individual_drifts())
        for drift in drifts:
            self.stdout.write(self.style.ERROR(f"DRIFT {drift}"))
        scope = (
            f"organization {org_id}" if org_id else f"{len(org_ids)} organizations and individual balances"
        )
        if drifts:
            raise CommandError(f"{len(drifts)} drift(s) found in {scope}.", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"Ledger reconciled: no drift in {scope}."))
