"""Demo data for the reference documents' three use cases. Safe to run again: it only fills
in what is missing (fixed ids, fixed request ids, so replayed charges change nothing)."""

import random
import sys
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from billing.management.commands._common import run_service
from billing.models import (
    CreditUsageAttribution,
    Department,
    OrganizationSubscription,
    OrgBillingHistory,
    UserCreditAllocation,
)
from billing.money import credits_to_millicredits
from billing.pricing import ensure_model_price
from billing.services import (
    PastCharge,
    add_credits_to_pool,
    allocate_credits_to_user,
    create_department,
    deduct_credits,
    record_past_usage,
)
from billing.services.rollups import rollup_usage
from billing.services.subscriptions import create_subscription
from organizations.models import Organization, OrganizationMember, User
from organizations.services import (
    accept_invitation,
    create_organization,
    ensure_user,
    invite_member,
    set_default_organization,
)

LABEL = "command:seed_demo"
DEMO_PRICES = [
    ("gpt-4o-mini", "15", "60", "0"),
    ("gpt-3.5-turbo", "50", "150", "0"),
    ("claude-3-5-sonnet", "300", "1500", "0"),
    ("llama-3.1-70b", "60", "60", "0"),
    ("dall-e-3", "0", "0", "4"),
]
DEMO_MODELS = [("gpt-4o-mini", 0.35), ("claude-3-5-sonnet", 1.2), ("llama-3.1-70b", 0.5)]
# The month of history (``history``): days back, and per org how many of its members call the
# models on a working day (at most) and how often. Weekends are quiet. The same every run.
HISTORY_DAYS = 30
HISTORY_PROFILE = {
    "startup-team": (6, 6),
    "client-a": (2, 2),
    "client-b": (2, 3),
    "client-c": (2, 4),
    "enterprise-corp": (40, 3),
}
# Of their free credits, members spend at most this share in the history.
HISTORY_BUDGET_SHARE = Decimal("0.6")
# The enterprise's departments (the demo usernames' middle part): name, budget, credits per member.
ENTERPRISE_DEPARTMENTS = {
    "eng": ("Engineering", 40_000, 1500),
    "marketing": ("Marketing", 22_000, 800),
    "sales": ("Sales", 16_000, 600),
    "support": ("Support", 14_000, 500),
}


class Command(BaseCommand):
    help = "Load the demo: a 5-member startup, a consultant in 3 client orgs, a 100-member enterprise."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--member",
            metavar="USERNAME",
            help="Also make this existing user a member of client-a (their default org) and "
            "client-b, with credits and usage, so they see the demo in the portal (make run: the dev admin).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.prices()
        self.startup_team()
        self.consultant()
        self.enterprise()
        if options.get("member"):
            self.guest(options["member"])
        self.history()
        self.stdout.write(self.style.SUCCESS("Demo data ready: startup-team, client-a/b/c, enterprise-corp."))

    # -- building blocks --------------------------------------------------------------------

    def org(self, org_id: str, name: str, admin: User, plan_code: str, credits: int, paid: str) -> None:
        if not Organization.objects.filter(pk=org_id).exists():
            run_service(
                lambda: create_organization(
                    org_id=org_id,
                    org_name=name,
                    created_by=admin,
                    billing_email=admin.email,
                    actor_label=LABEL,
                )
            )
        if not OrganizationSubscription.objects.filter(org_id=org_id).exists():
            run_service(
                lambda: create_subscription(
                    org_id=org_id, plan_code=plan_code, owner=admin, actor_label=LABEL
                )
            )
        external_id = f"seed-demo-{org_id}-initial-credits"
        if not OrgBillingHistory.objects.filter(external_id=external_id).exists():
            run_service(
                lambda: add_credits_to_pool(
                    org_id=org_id,
                    amount=credits_to_millicredits(credits),
                    purchase_amount=Decimal(paid),
                    external_id=external_id,
                    actor_label=LABEL,
                    description="Initial credit purchase",
                )
            )

    def member(self, org_id: str, user: User, role: str = "member", is_default: bool = False) -> None:
        """Invited by the org's creator, then accepted, as people join: membership takes consent
        (an invitation left pending by an interrupted run is refreshed and accepted)."""
        if OrganizationMember.objects.filter(org_id=org_id, user=user).exclude(status="invited").exists():
            return
        inviter = Organization.objects.get(pk=org_id).created_by
        assert inviter is not None, f"{org_id} has no creator to invite its members"
        run_service(
            lambda: invite_member(
                org_id=org_id, user=user, role=role, actor=inviter, actor_label=LABEL, notify=False
            )
        )
        run_service(lambda: accept_invitation(user=user, org_id=org_id))
        if is_default:
            run_service(lambda: set_default_organization(user=user, org_id=org_id))

    def allocation(
        self,
        org_id: str,
        user: User,
        credits: int,
        department_id: int | None = None,
        actor: User | None = None,
    ) -> None:
        if not UserCreditAllocation.objects.filter(org_id=org_id, user=user, is_active=True).exists():
            run_service(
                lambda: allocate_credits_to_user(
                    org_id=org_id,
                    user=user,
                    amount=credits_to_millicredits(credits),
                    actor=actor,
                    actor_label=LABEL,
                    department_id=department_id,
                )
            )

    def department(self, org_id: str, name: str, budget: int, manager: User) -> int | None:
        """The live department of that name (created with its budget and manager if missing).
        None when the org was seeded before departments existed: its members hold allocations
        from the pool already, which leaves no room for the budget; the demo then goes on
        without that department rather than failing ``make run`` on an existing database."""
        existing = Department.objects.filter(org_id=org_id, name=name, deleted_at__isnull=True).first()
        if existing is not None:
            return existing.pk
        if UserCreditAllocation.objects.filter(
            org_id=org_id, department__isnull=True, is_active=True, user=manager
        ).exists():
            self.stderr.write(
                f"{org_id} was seeded before departments: {name} left out (a fresh database has it: "
                "make db-stop && rm -rf .pg/dev)"
            )
            return None
        department = run_service(
            lambda: create_department(
                org_id=org_id,
                name=name,
                budget=credits_to_millicredits(budget),
                managers=[manager],
                actor_label=LABEL,
            )
        )
        return int(department.pk)

    def usage(self, org_id: str, user: User, calls: int) -> None:
        for n in range(calls):
            model, credits = DEMO_MODELS[n % len(DEMO_MODELS)]
            run_service(
                deduct_credits,
                user=user,
                org_id=org_id,
                amount=credits_to_millicredits(str(credits)),
                request_id=f"seed-{org_id}-{user.username}-{n}",
                service_name=model,
                input_tokens=1200 + 37 * n,
                output_tokens=300 + 11 * n,
                metadata={"seed": True},
            )

    def prices(self) -> None:
        """Model prices in credits per 1M tokens (1 credit = $0.01), editable in the admin."""
        for model, inp, out, image in DEMO_PRICES:
            ensure_model_price(
                model=model,
                input_per_million=Decimal(inp),
                output_per_million=Decimal(out),
                image=Decimal(image),
            )

    # -- the three use cases ----------------------------------------------------------------

    def startup_team(self) -> None:
        """Use case 1: starter plan, 5,000 credits, 1,000 to each of 5 members."""
        people = [
            ("startup-alice", "Alice", "Admin", "admin"),
            ("startup-bob", "Bob", "Developer", "member"),
            ("startup-chen", "Chen", "Developer", "member"),
            ("startup-dana", "Dana", "Designer", "member"),
            ("startup-eli", "Eli", "PM", "member"),
        ]
        users = [
            ensure_user(username=u, email=f"{u}@startup.example", first_name=f, last_name=last)
            for u, f, last, _ in people
        ]
        self.org("startup-team", "Startup Team", users[0], "starter", 5000, "50.00")
        for user, (_, _, _, role) in zip(users, people, strict=True):
            self.member("startup-team", user, role=role)
            self.allocation("startup-team", user, 1000)
            self.usage("startup-team", user, 6)

    def consultant(self) -> None:
        """Use case 2: one consultant in three client orgs, a different allocation in each."""
        carol = ensure_user(username="consultant-carol", email="carol@consulting.example", first_name="Carol")
        for index, (org_id, name, allocated) in enumerate(
            [("client-a", "Client A", 500), ("client-b", "Client B", 1500), ("client-c", "Client C", 3000)]
        ):
            admin = ensure_user(username=f"{org_id}-admin", email=f"admin@{org_id}.example")
            self.org(org_id, name, admin, "professional", 10000, "100.00")
            self.member(org_id, carol, is_default=index == 0)
            self.allocation(org_id, carol, allocated)
            self.usage(org_id, carol, 3 + index)

    def enterprise(self) -> None:
        """Use case 3: enterprise plan, 100,000 credits, 100 members in 4 departments, each
        department with a budget carved from the pool and its first member as its manager, who
        allocates to the department's members from the budget."""
        admin = ensure_user(username="enterprise-admin", email="admin@enterprise.example", first_name="Erin")
        self.org("enterprise-corp", "Enterprise Corp", admin, "enterprise", 100_000, "1000.00")
        seats = [(dept, n) for dept in ENTERPRISE_DEPARTMENTS for n in range(1, 26)]
        department_ids: dict[str, int | None] = {}
        for dept, n in tqdm(
            seats, desc="enterprise-corp members", unit="member", file=sys.stderr, disable=None
        ):
            name, budget, credits = ENTERPRISE_DEPARTMENTS[dept]
            user = ensure_user(username=f"ent-{dept}-{n:02d}", email=f"{dept}{n:02d}@enterprise.example")
            self.member("enterprise-corp", user)
            if n == 1:
                department_ids[dept] = self.department("enterprise-corp", name, budget, manager=user)
            manager = User.objects.get(username=f"ent-{dept}-01")
            self.allocation(
                "enterprise-corp",
                user,
                credits,
                department_id=department_ids[dept],
                actor=manager if department_ids[dept] is not None else None,
            )
            if n <= 5:
                self.usage("enterprise-corp", user, 2)

    def guest(self, username: str) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}: create it first (make run: ensure_dev_admin).")
        self.member("client-a", user, is_default=True)
        self.allocation("client-a", user, 2000)
        self.member("client-b", user)
        self.allocation("client-b", user, 1000)

    def history(self) -> None:
        """The last 30 days of usage, so the portal's and the API's charts mean something:
        charges dated through the day, recorded in bulk (``record_past_usage``: one
        transaction per org, balances raised with them), then the days rolled up. Done once per
        org: an org that has history already is left as it is."""
        now = timezone.now()
        today = now.astimezone(UTC).date()
        pick = random.Random(13)
        written = 0
        for org_id, (active_members, calls_per_day) in HISTORY_PROFILE.items():
            if CreditUsageAttribution.objects.filter(
                org_id=org_id, request_id__startswith="history-"
            ).exists():
                continue
            allocations = list(
                UserCreditAllocation.objects.filter(org_id=org_id, is_active=True)
                .select_related("user")
                .order_by("user__username")[:active_members]
            )
            charges = []
            for allocation in allocations:
                budget = int(allocation.free_credits * HISTORY_BUDGET_SHARE)
                spent = 0
                for back in range(HISTORY_DAYS - 1, -1, -1):
                    day = today - timedelta(days=back)
                    busy = 1.0 if day.weekday() < 5 else 0.25
                    for n in range(pick.randint(0, round(calls_per_day * 2 * busy))):
                        model, credits = pick.choice(DEMO_MODELS)
                        amount = credits_to_millicredits(str(round(credits * pick.uniform(0.3, 2.5), 3)))
                        at = datetime.combine(day, time(8), tzinfo=UTC) + timedelta(
                            minutes=pick.randint(0, 600)
                        )
                        if at >= now or spent + amount > budget:
                            continue
                        spent += amount
                        charges.append(
                            PastCharge(
                                user_id=allocation.user_id,
                                amount=amount,
                                request_id=f"history-{allocation.user.username}-{day.isoformat()}-{n}",
                                at=at,
                                service_name=model,
                                input_tokens=pick.randint(200, 6000),
                                output_tokens=pick.randint(50, 1500),
                                metadata={"seed": True},
                            )
                        )
            written += run_service(record_past_usage, org_id=org_id, charges=charges, actor_label=LABEL)
        if written:
            rollup_usage(first_day=today - timedelta(days=HISTORY_DAYS), last_day=today, now=now)
            self.stdout.write(f"Usage history: {written} charges over the last {HISTORY_DAYS} days.")
