"""``manage.py migrate_individual_credits``: users' remaining individual credits move into an
organization (pool total and allocation grow by them, reconciled), once; held credits stay;
``--dry-run`` changes nothing; ``--leave`` is audited; a charge racing the move is never lost
or double counted."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing.errors import InsufficientCredits
from billing.models import (
    AuditEvent,
    IndividualCreditBalance,
    IndividualCreditEntry,
    OrgBillingHistory,
    UserCreditAllocation,
)
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_individual_credits,
    allocate_credits_to_user,
    create_department,
    deduct_credits,
    reserve_credits,
)
from organizations.services import add_member
from tests.concurrency import run_concurrently
from tests.factories import UserFactory
from tests.helpers import mc, pool_of

pytestmark = pytest.mark.django_db


def migrate(*args: str) -> str:
    out = StringIO()
    call_command("migrate_individual_credits", *args, "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


def balance_of(user) -> IndividualCreditBalance:
    return IndividualCreditBalance.objects.get(user=user)


@pytest.fixture
def joined(team):
    """``team``'s member also had 50 individual credits and spent 5 of them."""
    add_individual_credits(user=team.member, amount=mc(50), actor_label="test")
    deduct_credits(user=team.member, org_id=None, amount=mc(5), request_id="before-1")
    return team


def test_remaining_individual_credits_move_into_the_org_pool_and_allocation(joined):
    team = joined
    pool_before = pool_of(team.org)

    output = migrate("--org", team.org.id, "--user", team.member.username)

    pool = pool_of(team.org)
    assert pool.total_credits == pool_before.total_credits + mc(45)
    assert pool.allocated_credits == pool_before.allocated_credits + mc(45)
    assert pool.available_credits == pool_before.available_credits  # carved straight into the allocation
    allocation = UserCreditAllocation.objects.get(org=team.org, user=team.member, is_active=True)
    assert allocation.allocated_credits == mc(145)
    balance = balance_of(team.member)
    assert (balance.total_credits, balance.used_credits, balance.free_credits) == (mc(5), mc(5), 0)
    entry = IndividualCreditEntry.objects.get(kind="migrated_to_org")
    assert (entry.credits, entry.org_id) == (-mc(45), team.org.id)
    assert OrgBillingHistory.objects.filter(external_id=entry.external_id, credits=mc(45)).exists()
    assert AuditEvent.objects.filter(action="individual.migrated_to_org", org_id=team.org.id).exists()
    assert "Moved 45.000 credits of 1 user(s)" in output
    assert find_all_drifts() == []


def test_a_second_run_moves_nothing(joined):
    team = joined
    migrate("--org", team.org.id)
    add_individual_credits(user=team.member, amount=mc(10), actor_label="later")  # bought afterwards
    snapshot = (pool_of(team.org).total_credits, balance_of(team.member).total_credits)

    output = migrate("--org", team.org.id)

    assert (pool_of(team.org).total_credits, balance_of(team.member).total_credits) == snapshot
    assert IndividualCreditEntry.objects.filter(kind="migrated_to_org").count() == 1
    assert "Moved 0.000 credits of 0 user(s)" in output


def test_credits_on_hold_stay_individual(joined):
    team = joined
    reserve_credits(user=team.member, org_id=None, amount=mc(15), request_id="in-flight")

    migrate("--org", team.org.id, "--user", team.member.username)

    balance = balance_of(team.member)
    assert (balance.total_credits, balance.used_credits, balance.reserved_credits) == (mc(20), mc(5), mc(15))
    assert UserCreditAllocation.objects.get(org=team.org, user=team.member).allocated_credits == mc(130)
    assert IndividualCreditEntry.objects.get(kind="migrated_to_org").metadata["held_kept"] == mc(15)
    assert find_all_drifts() == []


def test_dry_run_prints_the_plan_and_changes_nothing(joined):
    team = joined
    reserve_credits(user=team.member, org_id=None, amount=mc(15), request_id="in-flight")
    before = (pool_of(team.org).total_credits, balance_of(team.member).total_credits)

    output = migrate("--org", team.org.id, "--dry-run")

    assert (
        f"{team.member.username}: would move 30.000 credits into {team.org.id} (15.000 on hold stay" in output
    )
    assert "Dry run: 2 user(s), 30.000 credits would move; nothing changed." in output  # member and admin
    assert (pool_of(team.org).total_credits, balance_of(team.member).total_credits) == before
    assert not IndividualCreditEntry.objects.filter(kind="migrated_to_org").exists()


def test_leave_keeps_the_credits_individual_and_is_audited(joined):
    team = joined
    before = (pool_of(team.org).total_credits, balance_of(team.member).total_credits)

    migrate("--org", team.org.id, "--user", team.member.username, "--leave")

    assert (pool_of(team.org).total_credits, balance_of(team.member).total_credits) == before
    event = AuditEvent.objects.get(action="individual.migration_left")
    assert (event.target_id, event.metadata["credits_left"]) == (team.member.username, mc(45))


def test_non_members_and_department_allocations_are_refused_and_reported(joined):
    team = joined
    add_individual_credits(user=team.outsider, amount=mc(5), actor_label="test")
    seller = UserFactory()
    add_member(org_id=team.org.id, user=seller)
    sales = create_department(org_id=team.org.id, name="Sales", budget=mc(10), actor_label="test")
    allocate_credits_to_user(org_id=team.org.id, user=seller, amount=mc(1), department_id=sales.pk)
    add_individual_credits(user=seller, amount=mc(7), actor_label="test")
    users = [team.outsider, seller, team.member]

    output = migrate("--org", team.org.id, *[arg for u in users for arg in ("--user", u.username)])

    assert f"{team.outsider.username} (not_a_member)" in output
    assert f"{seller.username} (allocation_in_other_department)" in output
    assert balance_of(team.outsider).total_credits == mc(5)
    assert balance_of(seller).total_credits == mc(7)
    assert balance_of(team.member).total_credits == mc(5)  # the member moved
    assert find_all_drifts() == []


def test_an_unknown_org_or_user_is_a_command_error(joined):
    with pytest.raises(CommandError, match="organization_not_found"):
        migrate("--org", "no-such-org")
    with pytest.raises(CommandError, match="user_not_found"):
        migrate("--org", joined.org.id, "--user", "nobody")


@pytest.mark.django_db(transaction=True)
def test_the_migration_racing_charges_on_the_individual_balance_loses_and_doubles_nothing(make_funded_member):
    # given: 10 individual credits, and charges of 1 credit racing the move
    org, user, _ = make_funded_member(pool=100, allocation=10)
    add_individual_credits(user=user, amount=mc(10), actor_label="test")

    def work(i: int):
        if i == 0:
            return migrate("--org", org.id, "--user", user.username)
        return deduct_credits(user=user, org_id=None, amount=mc(1), request_id=f"race-{i}")

    results = run_concurrently(work, 8)

    # then every credit is either charged individually or moved, never both, never lost
    charged = [r for r in results[1:] if not isinstance(r, BaseException)]
    refused = [r for r in results[1:] if isinstance(r, BaseException)]
    assert all(isinstance(r, InsufficientCredits) for r in refused), refused
    balance = balance_of(user)
    moved = -sum(
        IndividualCreditEntry.objects.filter(kind="migrated_to_org").values_list("credits", flat=True)
    )
    assert balance.used_credits == mc(len(charged))
    assert moved + balance.used_credits == mc(10)
    assert balance.total_credits == balance.used_credits and balance.reserved_credits == 0
    allocation = UserCreditAllocation.objects.get(org=org, user=user, is_active=True)
    assert allocation.allocated_credits == mc(10) + moved
    assert pool_of(org).total_credits == mc(100) + moved
    assert find_all_drifts() == []
