"""Move users' remaining individual credits into an organization (or leave them): the
reference documents' individual → organization migration."""

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from billing.ledger.individual_migration import (
    MigrationPlan,
    leave_individual_credits,
    migrate_individual_credits,
    plan_individual_migration,
)
from billing.management.commands._common import get_user
from billing.money import millicredits_to_credits
from organizations.models import Organization, OrganizationMember, User
from orgbilling.errors import ApplicationError

ACTOR = "command:migrate_individual_credits"


def _credits(millicredits: int) -> str:
    return f"{millicredits_to_credits(millicredits)}"


class Command(BaseCommand):
    help = (
        "Move the remaining individual credits (total - used - reserved) of the given users, or of "
        "every active member of --org, into --org: the pool's total and each user's allocation grow "
        "by them (audited, once per user and org: a second run moves nothing). Credits on hold for "
        "calls in flight stay individual. --leave records that the credits stay individual instead."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", required=True, help="the organization the credits move into")
        parser.add_argument(
            "--user",
            action="append",
            default=[],
            help="a user_id to migrate (repeatable; default: all members)",
        )
        parser.add_argument("--leave", action="store_true", help="leave the credits individual (audited)")
        parser.add_argument("--dry-run", action="store_true", help="print what would happen; change nothing")
        parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")

    def _users(self, org_id: str, user_ids: list[str]) -> list[User]:
        if user_ids:
            return [get_user(user_id) for user_id in user_ids]
        return list(
            User.objects.filter(
                memberships__org_id=org_id, memberships__status=OrganizationMember.Status.ACTIVE
            ).order_by("username")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        org_id = options["org"]
        if not Organization.objects.filter(pk=org_id).exists():
            raise CommandError(f"organization_not_found: no organization {org_id!r}")
        users = self._users(org_id, options["user"])
        if options["dry_run"]:
            self._dry_run(org_id, users, leave=options["leave"])
            return
        moved_users, moved, refused = 0, 0, []
        progress = tqdm(
            users,
            unit="user",
            desc="Migrating",
            file=sys.stderr,
            disable=True if options["no_progress"] else None,
        )
        with progress:
            for user in progress:
                if options["leave"]:
                    leave_individual_credits(user=user, org_id=org_id, actor_label=ACTOR)
                    continue
                try:
                    outcome = migrate_individual_credits(user=user, org_id=org_id, actor_label=ACTOR)
                except ApplicationError as error:
                    refused.append(f"{user.username} ({error.code})")
                    continue
                if outcome.moved:
                    moved_users += 1
                    moved += outcome.moved
        if refused:
            self.stdout.write(
                self.style.WARNING(f"{len(refused)} user(s) not migrated: " + ", ".join(refused))
            )
        if options["leave"]:
            self.stdout.write(
                self.style.SUCCESS(f"Left the individual credits of {len(users)} user(s) as they are.")
            )
            return
        self.stdout.write(
            self.style.SUCCESS(f"Moved {_credits(moved)} credits of {moved_users} user(s) into {org_id}.")
        )

    def _dry_run(self, org_id: str, users: list[User], *, leave: bool) -> None:
        total = 0
        for user in users:
            plan: MigrationPlan = plan_individual_migration(user=user, org_id=org_id)
            held = f" ({_credits(plan.held)} on hold stay individual)" if plan.held else ""
            if plan.already_moved:
                line = f"{user.username}: already moved into {org_id}; nothing to do"
            elif leave:
                line = f"{user.username}: would leave {_credits(plan.movable)} credits individual"
            else:
                line = f"{user.username}: would move {_credits(plan.movable)} credits into {org_id}{held}"
                total += plan.movable
            self.stdout.write(line)
        self.stdout.write(
            self.style.SUCCESS(
                f"Dry run: {len(users)} user(s), {_credits(total)} credits would move; nothing changed."
            )
        )
