"""Mirror Lago's invoices (all pages) into the billing history. Idempotent; exit 1 if any
organization could not be synced."""

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from billing.management.commands._common import run_service
from billing.payments.lago_events import orgs_to_sync, sync_lago_invoices


class Command(BaseCommand):
    help = "Pull every Lago invoice of each organization into org_billing_history (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", dest="org_id", help="sync one organization only")
        parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        org_ids = run_service(orgs_to_sync, org_id=options["org_id"])
        progress = tqdm(
            total=len(org_ids),
            unit="org",
            desc="Syncing Lago invoices",
            file=sys.stderr,
            disable=True if options["no_progress"] else None,
        )
        with progress:
            result = run_service(
                sync_lago_invoices, org_ids=org_ids, on_org_done=lambda _org: progress.update(1)
            )
        self.stdout.write(
            f"{result.organizations} organizations, {result.invoices_seen} invoices seen, "
            f"{result.invoices_created} new invoices, {result.payments_created} new payments"
        )
        problems = []
        if result.failed_orgs:
            problems.append(f"billing_backend_unavailable: not synced: {', '.join(result.failed_orgs)}")
        if result.refused_invoices:
            problems.append(f"invoices refused (see the log): {', '.join(result.refused_invoices)}")
        if problems:
            raise CommandError("; ".join(problems))
