"""Credit grants past expires_at: unspent, unallocated credits leave the pool through the ledger,
exactly once; what members hold stays with them (billing.ledger.grant_expiry)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from billing.models import AuditEvent, CreditGrant, CreditUsageAttribution, OrgBillingHistory
from billing.selectors.grants import org_grants
from billing.selectors.pool_history import pool_history
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_credits_to_pool,
    adjust_allocation,
    allocate_credits_to_user,
    deduct_credits,
    revoke_allocation,
)
from billing.services.grant_expiry import expire_credit_grants, expire_org_grants
from billing.tasks import expire_credit_grants as expire_credit_grants_task
from organizations.services import add_member
from tests.concurrency import run_concurrently
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, pool_of

LATER = timedelta(days=2)


def org_with_member():
    org = OrganizationFactory()
    user = UserFactory()
    add_member(org_id=org.id, user=user, actor_label="test")
    return org, user


def expiring_grant(org_id: str, credits: int, days: int = 1, **terms) -> CreditGrant:
    change = add_credits_to_pool(
        org_id=org_id,
        amount=mc(credits),
        actor_label="test",
        expires_at=timezone.now() + timedelta(days=days),
        **terms,
    )
    assert change.grant is not None
    return change.grant


def remaining(org_id: str) -> dict[int, int]:
    return {view.grant_id: view.remaining_credits for view in org_grants(org_id=org_id)}


def expiry_rows(org_id: str):
    return OrgBillingHistory.objects.filter(org_id=org_id, event_type="credit_expiry")


@pytest.mark.django_db
def test_an_expired_grant_takes_its_unallocated_unspent_credits_out_of_the_pool():
    # given: a 100-credit grant; 30 allocated to a member, 10 of them used
    org, user = org_with_member()
    grant = expiring_grant(org.id, 100)
    allocate_credits_to_user(org_id=org.id, user=user, amount=mc(30), actor_label="test")
    deduct_credits(user=user, org_id=org.id, amount=mc(10), request_id="r1", service_name="m")

    # when: the pass runs after its expiry
    outcome = expire_credit_grants(now=timezone.now() + LATER)

    # then: the 70 unallocated credits left through a credit_expiry row; the member keeps 20
    assert (outcome.expired, outcome.forfeited) == (1, mc(70))
    grant.refresh_from_db()
    assert (grant.forfeited_credits, grant.retained_credits) == (mc(70), mc(20))
    assert grant.expired_at is not None
    pool = pool_of(org)
    assert (pool.total_credits, pool.allocated_credits, pool.used_credits) == (mc(30), mc(30), mc(10))
    row = expiry_rows(org.id).get()
    assert (row.credits, row.external_id) == (mc(70), f"grant-{grant.pk}-expiry-0")
    event = AuditEvent.objects.get(action="grant.expired", target_id=str(grant.pk))
    assert (event.metadata["forfeited"], event.metadata["retained"]) == (mc(70), mc(20))
    assert remaining(org.id) == {grant.pk: mc(20)}
    assert find_all_drifts(org.id) == []


@pytest.mark.django_db
def test_the_pool_history_shows_the_expiry_as_credits_leaving():
    org, _ = org_with_member()
    expiring_grant(org.id, 100)
    expire_credit_grants(now=timezone.now() + LATER)

    today = timezone.now().date()
    history = pool_history(org_id=org.id, used_credits=0, daily_used=[(today, 0)])

    assert history[-1].total_credits == 0 == pool_of(org).total_credits


@pytest.mark.django_db
def test_expiry_never_takes_credits_members_hold():
    # given: the whole expiring grant allocated to a member
    org, user = org_with_member()
    grant = expiring_grant(org.id, 100)
    allocation = allocate_credits_to_user(
        org_id=org.id, user=user, amount=mc(100), actor_label="test"
    ).allocation

    expire_credit_grants(now=timezone.now() + LATER)

    # then: nothing left the pool; the allocation is untouched and still spendable
    grant.refresh_from_db()
    assert (grant.forfeited_credits, grant.retained_credits) == (0, mc(100))
    assert pool_of(org).total_credits == mc(100)
    allocation.refresh_from_db()
    assert allocation.allocated_credits == mc(100)
    deduct_credits(user=user, org_id=org.id, amount=mc(100), request_id="r1", service_name="m")
    assert not expiry_rows(org.id).exists()
    assert AuditEvent.objects.filter(action="grant.expired", target_id=str(grant.pk)).count() == 1
    assert find_all_drifts(org.id) == []


@pytest.mark.django_db
def test_expired_credits_a_member_gives_back_leave_at_the_next_pass():
    # given: an expired grant whose 100 credits a member held (retained)
    org, user = org_with_member()
    grant = expiring_grant(org.id, 100)
    allocate_credits_to_user(org_id=org.id, user=user, amount=mc(100), actor_label="test")
    deduct_credits(user=user, org_id=org.id, amount=mc(10), request_id="r1", service_name="m")
    expire_credit_grants(now=timezone.now() + LATER)

    # when: the member's allocation is lowered to 40 (60 go back to the pool), and a pass runs
    adjust_allocation(org_id=org.id, user=user, allocated=mc(40), actor_label="test")
    outcome = expire_credit_grants(now=timezone.now() + LATER)

    # then: those 60 leave (a second keyed step); the member keeps 30 unspent
    assert (outcome.expired, outcome.forfeited) == (0, mc(60))
    grant.refresh_from_db()
    assert (grant.forfeited_credits, grant.retained_credits) == (mc(60), mc(30))
    assert list(expiry_rows(org.id).values_list("external_id", flat=True)) == [f"grant-{grant.pk}-expiry-0"]
    pool = pool_of(org)
    assert (pool.total_credits, pool.allocated_credits) == (mc(40), mc(40))
    # and once the allocation is revoked, the rest leaves
    revoke_allocation(org_id=org.id, user=user, actor_label="test")
    expire_credit_grants(now=timezone.now() + LATER)
    assert pool_of(org).total_credits == mc(10)
    assert expiry_rows(org.id).aggregate(total=Sum("credits"))["total"] == mc(90)
    assert find_all_drifts(org.id) == []


@pytest.mark.django_db
def test_a_purchase_made_after_an_expiry_is_not_taken_by_the_expired_grant():
    # given: an expired grant entirely held by a member
    org, user = org_with_member()
    old = expiring_grant(org.id, 100)
    allocate_credits_to_user(org_id=org.id, user=user, amount=mc(100), actor_label="test")
    expire_credit_grants(now=timezone.now() + LATER)

    # when: 50 credits are bought, and passes run
    bought = add_credits_to_pool(org_id=org.id, amount=mc(50), purchase_amount="0.50").grant
    expire_credit_grants(now=timezone.now() + LATER)

    # then: all 150 stay; the member's next spending burns the expired grant's credits first
    assert pool_of(org).total_credits == mc(150)
    deduct_credits(user=user, org_id=org.id, amount=mc(20), request_id="r1", service_name="m")
    assert remaining(org.id) == {old.pk: mc(80), bought.pk: mc(50)}
    assert find_all_drifts(org.id) == []


@pytest.mark.django_db
def test_a_grant_not_yet_expired_is_left_alone():
    org, _ = org_with_member()
    grant = expiring_grant(org.id, 100, days=5)

    assert expire_org_grants(org_id=org.id, now=timezone.now() + LATER) == []
    grant.refresh_from_db()
    assert grant.expired_at is None
    assert pool_of(org).total_credits == mc(100)


@pytest.mark.django_db(transaction=True)
def test_two_expiry_workers_at_once_expire_a_grant_once():
    org, user = org_with_member()
    grant = expiring_grant(org.id, 100)
    allocate_credits_to_user(org_id=org.id, user=user, amount=mc(25), actor_label="test")
    later = timezone.now() + LATER

    results = run_concurrently(lambda i: expire_credit_grants(now=later), 4)

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(r.forfeited for r in results) == mc(75)
    assert sum(r.expired for r in results) == 1
    assert expiry_rows(org.id).count() == 1
    assert AuditEvent.objects.filter(action="grant.expired", target_id=str(grant.pk)).count() == 1
    assert pool_of(org).total_credits == mc(25)
    assert find_all_drifts() == []


@pytest.mark.django_db(transaction=True)
def test_a_grant_expiring_while_members_charge_leaves_exact_balances():
    # given: an expiring grant of 1,000 and a lasting one of 500; 8 members hold 60 each
    org = OrganizationFactory()
    expiring = expiring_grant(org.id, 1000)
    lasting = add_credits_to_pool(org_id=org.id, amount=mc(500), actor_label="test").grant
    members = []
    for _ in range(8):
        user = UserFactory()
        add_member(org_id=org.id, user=user, actor_label="test")
        allocate_credits_to_user(org_id=org.id, user=user, amount=mc(60), actor_label="test")
        members.append(user)
    later = timezone.now() + LATER

    def work(i: int):
        if i == len(members):
            return expire_credit_grants(now=later)
        for n in range(10):
            deduct_credits(
                user=members[i], org_id=org.id, amount=mc(5), request_id=f"r{i}-{n}", service_name="m"
            )
        return None

    # when: the charges and the expiry pass run at once
    results = run_concurrently(work, len(members) + 1)

    # then: every charge counted once, the expiry took only unallocated credits, all reconciles
    assert not [r for r in results if isinstance(r, BaseException)], results
    used = CreditUsageAttribution.objects.filter(org=org).aggregate(total=Sum("credits_used"))["total"]
    assert used == mc(400)
    expiring.refresh_from_db()
    forfeited = expiring.forfeited_credits
    assert 0 < forfeited <= mc(1500 - 480)
    assert expiry_rows(org.id).aggregate(total=Sum("credits"))["total"] == forfeited
    pool = pool_of(org)
    assert (pool.total_credits, pool.allocated_credits, pool.used_credits) == (
        mc(1500) - forfeited,
        mc(480),
        mc(400),
    )
    left = remaining(org.id)
    assert left[expiring.pk] + left[lasting.pk] == pool.total_credits - pool.used_credits
    assert find_all_drifts() == []


@pytest.mark.django_db
def test_the_command_dry_run_lists_and_changes_nothing():
    org, _ = org_with_member()
    expiring_grant(org.id, 100)
    out = StringIO()

    call_command("expire_credit_grants", "--dry-run", "--no-progress", stdout=out)

    assert "grant(s) to expire; nothing changed" in out.getvalue()
    assert pool_of(org).total_credits == mc(100)
    assert not expiry_rows(org.id).exists()


@pytest.mark.django_db
def test_the_command_expires_due_grants():
    org, _ = org_with_member()
    grant = expiring_grant(org.id, 100)
    CreditGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    out = StringIO()

    call_command("expire_credit_grants", "--no-progress", stdout=out)

    assert "Expired 1 grant(s); 100.000 credits left the pools." in out.getvalue()
    assert pool_of(org).total_credits == 0
    assert find_all_drifts(org.id) == []


@pytest.mark.django_db
def test_the_task_is_scheduled_and_expires_due_grants():
    assert any(
        entry["task"] == "billing.tasks.expire_credit_grants"
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
    )
    org, _ = org_with_member()
    grant = expiring_grant(org.id, 40)
    CreditGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert expire_credit_grants_task() == {"expired": 1, "forfeited": mc(40)}
