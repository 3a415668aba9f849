"""Expire credit grants past their expires_at: unspent, unallocated credits leave the pool."""

import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from tqdm import tqdm

from billing.money import millicredits_to_credits
from billing.services.grant_expiry import expire_org_grants, orgs_with_grants_to_check, planned_expiry

ACTOR = "command:expire_credit_grants"


class Command(BaseCommand):
    help = (
        "Expire every credit grant whose expires_at has passed: its unspent credits leave the pool "
        "as far as they are unallocated (a credit_expiry history row, audited as grant.expired); "
        "what members hold stays with them and leaves later only if they give it back. The task "
        "billing.tasks.expire_credit_grants does the same on a schedule."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="list what would expire; change nothing")
        parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        org_ids = orgs_with_grants_to_check(now=now)
        if options["dry_run"]:
            count = 0
            for org_id in org_ids:
                for step in planned_expiry(org_id=org_id, now=now):
                    count += 1
                    self.stdout.write(
                        f"would {'expire' if step.newly_expired else 'return'} grant #{step.grant_id} of "
                        f"{org_id}: {millicredits_to_credits(step.forfeited)} credits leave the pool, "
                        f"{millicredits_to_credits(step.retained)} stay with members"
                    )
            self.stdout.write(self.style.SUCCESS(f"Dry run: {count} grant(s) to expire; nothing changed."))
            return
        expired = forfeited = 0
        progress = tqdm(
            org_ids,
            unit="org",
            desc="Expiring grants",
            file=sys.stderr,
            disable=True if options["no_progress"] else None,
        )
        with progress:
            for org_id in progress:
                steps = expire_org_grants(org_id=org_id, now=now, actor_label=ACTOR)
                expired += sum(1 for step in steps if step.newly_expired)
                forfeited += sum(step.forfeited for step in steps)
        self.stdout.write(
            self.style.SUCCESS(
                f"Expired {expired} grant(s); {millicredits_to_credits(forfeited)} credits left the pools."
            )
        )
