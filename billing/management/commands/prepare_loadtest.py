"""Set up (or refresh) the people ``make loadtest`` plays: load-test organizations with
members, admins and one gateway service each, allocations topped up for the run, a price for
the fake upstream's model, and a fresh API key per person written to a 0600 JSON file.

Safe to run again: it creates what is missing, tops balances back up, and revokes the keys the
previous run was given before minting new ones (a key is shown once; only its hash is kept).
"""

import json
import math
import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.management.commands._common import run_service
from billing.models import OrganizationCreditPool, OrganizationSubscription, UserCreditAllocation
from billing.money import credits_to_millicredits, millicredits_to_credits
from billing.pricing import ensure_model_price
from billing.services import add_credits_to_pool, allocate_credits_to_user
from billing.services.subscriptions import LIVE, create_subscription
from organizations.models import ApiKey, OrganizationMember, User
from organizations.services import add_member, create_api_key, ensure_user, revoke_api_key
from orgbilling.settings.env import BASE_DIR

LABEL = "command:prepare_loadtest"
PREFIX = "loadtest-"
KEY_NAME = "make loadtest"
MODEL = "fake-model"  # what tests/fake_upstream.py answers for
PLAN = "enterprise"  # no monthly API-call quota: the gateway never answers quota_exceeded
DEFAULT_KEYS_FILE = BASE_DIR / ".pg" / "loadtest-keys.json"
MAX_USERS = 10_000


@dataclass(frozen=True)
class LoadTestOrg:
    """One organization's seats: its admins, its gateway service account and its members."""

    org_id: str
    admins: tuple[str, ...]
    service: str
    members: tuple[str, ...]


def loadtest_layout(*, users: int, org_size: int) -> list[LoadTestOrg]:
    """``users`` seats spread evenly over as few orgs of at most ``org_size`` as fit; per org
    one gateway service, an admin per 10 seats (at least one), the rest members."""
    if users < 3 or org_size < 5:
        raise ValueError("at least 3 users and an org size of at least 5")
    count = math.ceil(users / org_size)
    base, extra = divmod(users, count)
    orgs = []
    for index in range(1, count + 1):
        seats = base + (1 if index <= extra else 0)
        org_id = f"{PREFIX}{index:02d}"
        admins = max(1, seats // 10)
        orgs.append(
            LoadTestOrg(
                org_id=org_id,
                admins=tuple(f"{org_id}-admin-{n}" for n in range(1, admins + 1)),
                service=f"{org_id}-gateway",
                members=tuple(f"{org_id}-member-{n:03d}" for n in range(1, seats - admins)),
            )
        )
    return orgs


def _positive_int(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise CommandError(f"invalid_value: {text!r} is not a whole number") from None
        if not low <= value <= high:
            raise CommandError(f"invalid_value: {value} is outside {low}-{high}")
        return value

    return parse


class Command(BaseCommand):
    help = (
        "Create or refresh the load-test orgs, people, allocations and API keys for `make loadtest`; "
        "the keys go to a 0600 JSON file and the previous run's keys are revoked."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", default="200", help="people to prepare: Locust users (3-10000)")
        parser.add_argument("--org-size", default="20", help="people per organization at most (5-1000)")
        parser.add_argument(
            "--credits-per-member", default="1000", help="free credits each member has at the start (1000)"
        )
        parser.add_argument(
            "--pool-headroom",
            default="10000",
            help="unallocated credits each pool keeps for the admins' allocations during the run (10000)",
        )
        parser.add_argument("--keys-file", default=str(DEFAULT_KEYS_FILE), help="where the keys are written")
        parser.add_argument(
            "--allow-non-debug",
            action="store_true",
            help="run although DEBUG is off (it grants credits out of nothing: never on production data)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_non_debug"]:
            raise CommandError(
                "refused: DEBUG is off. This command grants credits out of nothing; run it against a "
                "development database (make run), or pass --allow-non-debug for a throwaway one."
            )
        users = _positive_int(3, MAX_USERS)(options["users"])
        org_size = _positive_int(5, 1000)(options["org_size"])
        per_member = run_service(lambda: credits_to_millicredits(options["credits_per_member"]))
        headroom = run_service(lambda: credits_to_millicredits(options["pool_headroom"]))
        keys_file = self._keys_file(options["keys_file"])

        layout = loadtest_layout(users=users, org_size=org_size)
        ensure_model_price(model=MODEL, input_per_million=Decimal(150), output_per_million=Decimal(600))
        revoked = self._revoke_previous_keys()
        people: list[dict[str, str]] = []
        topped_up = 0
        for org in layout:
            topped_up += self._prepare_org(org, per_member=per_member, headroom=headroom)
            people.extend(self._mint_keys(org))
        self._write_keys(
            keys_file,
            {
                "created_at": timezone.now().isoformat(),
                "model": MODEL,
                "orgs": [
                    {
                        "org_id": org.org_id,
                        "admins": list(org.admins),
                        "service": org.service,
                        "members": list(org.members),
                    }
                    for org in layout
                ],
                "users": people,
            },
        )
        roles = {role: sum(1 for p in people if p["role"] == role) for role in ("member", "admin", "service")}
        self.stdout.write(
            self.style.SUCCESS(
                f"Load test ready: {len(layout)} organizations, {roles['member']} members, "
                f"{roles['admin']} admins, {roles['service']} gateway services; "
                f"{millicredits_to_credits(topped_up)} credits topped up; {len(people)} fresh API keys in "
                f"{keys_file} ({revoked} previous keys revoked)."
            )
        )

    # -- steps ------------------------------------------------------------------------------

    def _keys_file(self, raw: str) -> Path:
        path = Path(raw)
        if not path.is_absolute():
            path = BASE_DIR / path
        if path.is_dir() or path.is_symlink():
            raise CommandError(f"invalid_keys_file: {path} is a directory or a symlink")
        if path.suffix != ".json":
            raise CommandError(f"invalid_keys_file: {path} must end in .json")
        return path

    def _revoke_previous_keys(self) -> int:
        stale = ApiKey.objects.filter(
            user__username__startswith=PREFIX, name=KEY_NAME, revoked_at__isnull=True
        ).values_list("pk", flat=True)
        count = 0
        for key_id in list(stale):
            revoke_api_key(key_id=key_id, actor=None, actor_label=LABEL)
            count += 1
        return count

    def _person(self, username: str, first_name: str) -> User:
        return ensure_user(username=username, email=f"{username}@loadtest.invalid", first_name=first_name)

    def _prepare_org(self, org: LoadTestOrg, *, per_member: int, headroom: int) -> int:
        """The org, its subscription and memberships, members topped up to ``per_member`` free
        credits and the pool to ``headroom`` unallocated; returns the credits allocated."""
        admins = [self._person(username, "Admin") for username in org.admins]
        if not OrganizationSubscription.objects.filter(org_id=org.org_id, status__in=LIVE).exists():
            run_service(
                create_subscription,
                org_id=org.org_id,
                plan_code=PLAN,
                owner=admins[0],
                actor_label=LABEL,
                org_name=f"Load test {org.org_id.removeprefix(PREFIX)}",
            )
        members = [self._person(username, "Member") for username in org.members]
        service = self._person(org.service, "Gateway")
        existing = set(
            OrganizationMember.objects.filter(org_id=org.org_id).values_list("user__username", flat=True)
        )
        for user, role in [
            *((admin, OrganizationMember.Role.ADMIN) for admin in admins),
            (service, OrganizationMember.Role.ADMIN),
            *((member, OrganizationMember.Role.MEMBER) for member in members),
        ]:
            if user.username not in existing:
                run_service(
                    add_member, org_id=org.org_id, user=user, role=role, is_default=True, actor_label=LABEL
                )

        free = {
            username: allocated - used - reserved
            for username, allocated, used, reserved in UserCreditAllocation.objects.filter(
                org_id=org.org_id, is_active=True, user__username__in=org.members
            ).values_list("user__username", "allocated_credits", "used_credits", "reserved_credits")
        }
        top_ups = {m: per_member - free.get(m.username, 0) for m in members}
        top_ups = {m: amount for m, amount in top_ups.items() if amount > 0}
        pool = OrganizationCreditPool.objects.get(org_id=org.org_id)
        missing = sum(top_ups.values()) + headroom - pool.available_credits
        if missing > 0:
            run_service(
                add_credits_to_pool,
                org_id=org.org_id,
                amount=missing,
                actor_label=LABEL,
                description="Load-test credits (make loadtest)",
            )
        for member, amount in top_ups.items():
            run_service(
                allocate_credits_to_user, org_id=org.org_id, user=member, amount=amount, actor_label=LABEL
            )
        return sum(top_ups.values())

    def _mint_keys(self, org: LoadTestOrg) -> list[dict[str, str]]:
        seats = [
            *((username, "admin", ["read", "write"]) for username in org.admins),
            (org.service, "service", ["charge"]),
            *((username, "member", ["read", "write"]) for username in org.members),
        ]
        users = {u.username: u for u in User.objects.filter(username__in=[s[0] for s in seats])}
        people = []
        for username, role, scopes in seats:
            _, raw_key = run_service(
                create_api_key, user=users[username], name=KEY_NAME, org_id=org.org_id, scopes=scopes
            )
            people.append({"user_id": username, "org_id": org.org_id, "role": role, "key": raw_key})
        return people

    def _write_keys(self, path: Path, content: dict[str, Any]) -> None:
        """Atomically, readable by the owner only (the keys are live credentials)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".loadtest-keys.", suffix=".tmp")
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "w") as stream:
                json.dump(content, stream, indent=1)
                stream.write("\n")
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
