"""Charge the gateway calls whose settlement the database refused and that are still spooled, and
the calls whose web process died mid-call (their open records)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.services.gateway_calls import open_calls, spool


class Command(BaseCommand):
    help = (
        "Charge every settlement spooled in LLM_SETTLEMENT_SPOOL_DIR (calls the gateway answered "
        "while the database refused to charge them), exactly once each, then the open records "
        "(*.open) of calls whose process died, once they can no longer be running, at their "
        "estimate. The task billing.tasks.settle_spooled_calls does the same every minute. Exit 1 "
        "when an entry could not be settled (set aside as *.failed)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--list", action="store_true", help="list what is spooled; charge nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        directory = spool.spool_dir()
        if options["list"]:
            for suffix in (spool.SUFFIX, open_calls.SUFFIX):
                for path in sorted(directory.glob(f"*{suffix}")) if directory.is_dir() else []:
                    self.stdout.write(str(path))
            return
        outcome = spool.settle_spooled()
        self.stdout.write(
            f"{len(outcome.settled)} spooled settlement(s) charged from {directory}, "
            f"{len(outcome.process_lost)} of them calls whose process died"
        )
        if outcome.failed:
            raise CommandError(
                f"could not settle (set aside as *{spool.FAILED_SUFFIX}): {', '.join(outcome.failed)}"
            )
