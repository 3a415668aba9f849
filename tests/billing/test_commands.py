"""Management commands: add_credits, allocate_credits, reconcile_credits, seed_demo."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from billing.models import (
    AuditEvent,
    CreditUsageAttribution,
    Department,
    OrganizationCreditPool,
    OrganizationSubscription,
    UsageDailyRollup,
    UserCreditAllocation,
)
from billing.services import deduct_credits
from organizations.models import Organization, OrganizationMember
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, snapshot_balances

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_add_credits_and_allocate_credits_commands():
    org = OrganizationFactory()
    user = UserFactory(username="kc-sub-123")
    add_member(org_id=org.id, user=user)
    assert "total 5000.000" in run("add_credits", org.id, "5000", "--purchase-amount", "50")
    out = run("allocate_credits", org.id, "kc-sub-123", "1250.5")
    assert "allocated 1250.500" in out
    pool = OrganizationCreditPool.objects.get(org=org)
    assert (pool.total_credits, pool.allocated_credits) == (mc(5000), mc("1250.5"))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("add_credits", "nope", "5"), "organization_not_found"),
        (("add_credits", "{org}", "-5"), "invalid_amount"),
        (("add_credits", "{org}", "1.0001"), "invalid_amount"),
        (("add_credits", "{org}", "5", "--purchase-amount", "x"), "invalid_amount"),
        (("allocate_credits", "{org}", "ghost", "5"), "user_not_found"),
        (("allocate_credits", "{org}", "{user}", "999999"), "allocation_exceeds_pool"),
        (("allocate_credits", "{org}", "{user}", "5", "--expires-at", "tomorrow"), "validation_error"),
    ],
)
def test_commands_refuse_bad_input_and_change_nothing(args, code):
    org = OrganizationFactory()
    user = UserFactory()
    add_member(org_id=org.id, user=user)
    run("add_credits", org.id, "10")
    before = snapshot_balances()
    with pytest.raises(CommandError, match=code):
        run(*[a.format(org=org.id, user=user.username) for a in args])
    assert snapshot_balances() == before


def test_reconcile_is_clean_on_consistent_data(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="r")
    assert "no drift" in run("reconcile_credits", "--no-progress")
    assert "no drift" in run("reconcile_credits", "--org", org.id, "--no-progress")


def test_reconcile_detects_a_corrupted_balance_and_names_it(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="r")
    # given: one bad row written behind the services' back
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE user_credit_allocations SET used_credits = used_credits + 7 WHERE id = %s",
            [allocation.pk],
        )
    out = StringIO()
    # when
    with pytest.raises(CommandError) as info:
        call_command("reconcile_credits", "--no-progress", stdout=out, stderr=StringIO())
    # then
    assert info.value.returncode == 1
    text = out.getvalue()
    assert f"allocation #{allocation.pk}" in text
    assert "allocation_used_equals_sum_of_attribution" in text
    assert "pool_used_equals_sum_of_allocations" in text
    assert f"org {org.id}" in text


def test_reconcile_detects_a_pool_that_lost_an_allocation(make_funded_member):
    org, _, _ = make_funded_member(pool=100, allocation=10)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE organization_credit_pools SET allocated_credits = allocated_credits - 1"
            " WHERE org_id = %s",
            [org.id],
        )
    with pytest.raises(CommandError):
        run("reconcile_credits", "--no-progress")


def test_reconcile_of_unknown_org_is_an_error():
    with pytest.raises(CommandError, match="organization_not_found"):
        run("reconcile_credits", "--org", "nope")


def test_seed_demo_builds_the_three_use_cases_and_is_idempotent(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run("seed_demo")
    assert mail.outbox == []  # the demo's people are made up: no invitation is mailed
    first = snapshot_balances()
    run("seed_demo")
    assert snapshot_balances() == first

    startup = OrganizationMember.objects.filter(org_id="startup-team")
    assert startup.count() == 5
    assert set(
        UserCreditAllocation.objects.filter(org_id="startup-team").values_list("allocated_credits", flat=True)
    ) == {mc(1000)}
    assert OrganizationSubscription.objects.get(org_id="startup-team").plan.plan_code == "starter"

    carol = OrganizationMember.objects.filter(user__username="consultant-carol")
    assert sorted(carol.values_list("org_id", flat=True)) == ["client-a", "client-b", "client-c"]
    allocations = UserCreditAllocation.objects.filter(user__username="consultant-carol")
    assert len(set(allocations.values_list("allocated_credits", flat=True))) == 3

    assert OrganizationMember.objects.filter(org_id="enterprise-corp").count() == 101
    assert OrganizationCreditPool.objects.get(org_id="enterprise-corp").total_credits == mc(100_000)
    # Four departments, each managed by its first member, who allocated to its 25 members.
    departments = Department.objects.filter(org_id="enterprise-corp").prefetch_related("managers")
    assert {d.name: [m.username for m in d.managers.all()] for d in departments} == {
        "Engineering": ["ent-eng-01"],
        "Marketing": ["ent-marketing-01"],
        "Sales": ["ent-sales-01"],
        "Support": ["ent-support-01"],
    }
    engineering = departments.get(name="Engineering")
    assert engineering.allocated_credits == 25 * mc(1500)
    assert set(
        UserCreditAllocation.objects.filter(user__username__startswith="ent-eng-").values_list(
            "department_id", flat=True
        )
    ) == {engineering.pk}
    assert Organization.objects.count() == 5
    assert CreditUsageAttribution.objects.exists()
    assert "no drift" in run("reconcile_credits", "--no-progress")
    # Everyone joined by accepting an invitation (audited), and all are active now.
    assert not OrganizationMember.objects.exclude(status="active").exists()
    accepted = AuditEvent.objects.filter(action="member.invitation_accepted")
    assert accepted.filter(org_id="enterprise-corp").count() == 100
    assert accepted.filter(target_id="consultant-carol").count() == 3
    assert (
        OrganizationMember.objects.get(user__username="consultant-carol", is_default=True).org_id
        == "client-a"
    )


def test_seed_demo_gives_a_month_of_usage_and_the_dev_admin_the_demo_to_look_at():
    # One run for both (seed_demo takes seconds): the history, and --member.
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)

    run("seed_demo", "--member", "admin")

    since = timezone.now() - timedelta(days=30)
    history = CreditUsageAttribution.objects.filter(request_id__startswith="history-", created_at__gte=since)
    days = {row.date() for row in history.values_list("created_at", flat=True)}
    assert len(days) >= 25  # every working day, most weekend days
    assert set(history.values_list("org_id", flat=True)) == {
        "startup-team",
        "client-a",
        "client-b",
        "client-c",
        "enterprise-corp",
    }
    assert history.values("service_name").distinct().count() == 3
    assert UsageDailyRollup.objects.filter(org_id="enterprise-corp").exists()
    memberships = OrganizationMember.objects.filter(user=admin, status="active")
    assert sorted(memberships.values_list("org_id", flat=True)) == ["client-a", "client-b"]
    assert memberships.get(is_default=True).org_id == "client-a"
    assert history.filter(user=admin).exists()
    assert "no drift" in run("reconcile_credits", "--no-progress")


def test_seed_demo_refuses_an_unknown_member():
    with pytest.raises(CommandError, match="No user 'nobody'"):
        run("seed_demo", "--member", "nobody")
