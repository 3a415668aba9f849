"""Add credits to an organization's pool (a grant, or a recorded purchase)."""

from typing import Any

from django.core.management.base import BaseCommand

from billing.management.commands._common import run_service
from billing.money import credits_to_millicredits, millicredits_to_credits, parse_usd
from billing.services import add_credits_to_pool


class Command(BaseCommand):
    help = "Add CREDITS (up to 3 decimals) to ORG_ID's pool."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("org_id")
        parser.add_argument("credits")
        parser.add_argument("--purchase-amount", help="USD paid, recorded in billing history")
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        amount = run_service(lambda: credits_to_millicredits(options["credits"]))
        paid = options["purchase_amount"]
        purchase = run_service(lambda: parse_usd(paid)) if paid is not None else None
        change = run_service(
            lambda: add_credits_to_pool(
                org_id=options["org_id"],
                amount=amount,
                purchase_amount=purchase,
                actor_label="command:add_credits",
                description=options["description"],
            )
        )
        pool = change.pool
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {millicredits_to_credits(amount)} credits to {options['org_id']}: "
                f"total {millicredits_to_credits(pool.total_credits)}, "
                f"available {millicredits_to_credits(pool.available_credits)}"
            )
        )
