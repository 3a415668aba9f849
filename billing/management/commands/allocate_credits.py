"""Allocate credits from an organization's pool to one of its members."""

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from billing.management.commands._common import get_user, run_service
from billing.money import credits_to_millicredits, millicredits_to_credits
from billing.services import allocate_credits_to_user


class Command(BaseCommand):
    help = "Allocate CREDITS from ORG_ID's pool to USER_ID (raises an existing allocation)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("org_id")
        parser.add_argument("user_id", help="the user's user_id (username / OIDC sub)")
        parser.add_argument("credits")
        parser.add_argument("--expires-at", help="ISO 8601 timestamp with time zone")

    def handle(self, *args: Any, **options: Any) -> None:
        amount = run_service(lambda: credits_to_millicredits(options["credits"]))
        expires_at: datetime | None = None
        if options["expires_at"]:
            expires_at = parse_datetime(options["expires_at"])
            if expires_at is None or expires_at.tzinfo is None:
                raise CommandError("validation_error: --expires-at must be ISO 8601 with a time zone")
        user = get_user(options["user_id"])
        change = run_service(
            lambda: allocate_credits_to_user(
                org_id=options["org_id"],
                user=user,
                amount=amount,
                expires_at=expires_at,
                actor_label="command:allocate_credits",
            )
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"{options['user_id']} in {options['org_id']}: allocated "
                f"{millicredits_to_credits(change.allocation.allocated_credits)}; pool available "
                f"{millicredits_to_credits(change.pool.available_credits)}"
            )
        )
