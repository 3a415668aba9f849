"""The ledger under real concurrency: threads on their own PostgreSQL connections."""

import random

import pytest
from django.core.management import call_command

from billing.errors import InsufficientCredits
from billing.models import CreditUsageAttribution, OrganizationCreditPool, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_credits_to_pool,
    adjust_allocation,
    allocate_credits_to_user,
    deduct_credits,
    release_reservation,
    reserve_credits,
    revoke_allocation,
    settle_reservation,
    transfer_credits,
)
from organizations.services import add_member
from orgbilling.errors import ApplicationError
from tests.concurrency import run_concurrently
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db(transaction=True)


def test_100_concurrent_deductions_on_one_allocation_all_land(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)

    results = run_concurrently(
        lambda i: deduct_credits(user=user, org_id=org.id, amount=mc("0.05"), request_id=f"c-{i}"), 100
    )

    assert [r for r in results if isinstance(r, Exception)] == []
    assert all(r.success for r in results)
    allocation.refresh_from_db()
    assert allocation.used_credits == mc("5.000")
    assert CreditUsageAttribution.objects.filter(allocation=allocation).count() == 100
    assert OrganizationCreditPool.objects.get(org=org).used_credits == mc(5)
    assert sorted(r.remaining_credits for r in results) == [mc(5) + 50 * k for k in range(100)]


def test_100_concurrent_deductions_against_60_credits_exactly_60_succeed(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=60)

    results = run_concurrently(
        lambda i: deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id=f"c-{i}"), 100
    )

    succeeded = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(succeeded) == 60
    assert len(refused) == 40
    allocation.refresh_from_db()
    assert allocation.used_credits == allocation.allocated_credits == mc(60)
    assert allocation.free_credits == 0
    assert CreditUsageAttribution.objects.count() == 60
    assert find_all_drifts() == []


def test_racing_replays_of_one_request_id_charge_once(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)

    results = run_concurrently(
        lambda i: deduct_credits(user=user, org_id=org.id, amount=mc(2), request_id="same-request"), 30
    )

    assert [r for r in results if isinstance(r, Exception)] == []
    assert len({r.attribution_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    allocation.refresh_from_db()
    assert allocation.used_credits == mc(2)
    assert CreditUsageAttribution.objects.count() == 1


def test_racing_reserve_and_settle_replays_hold_and_charge_once(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)

    holds = run_concurrently(
        lambda i: reserve_credits(user=user, org_id=org.id, amount=mc(3), request_id="hold-1"), 20
    )
    assert [h for h in holds if isinstance(h, Exception)] == []
    assert len({h.reservation_id for h in holds}) == 1
    allocation.refresh_from_db()
    assert allocation.reserved_credits == mc(3)

    settled = run_concurrently(
        lambda i: settle_reservation(reservation_id=holds[0].reservation_id, actual_amount=mc(1)), 20
    )
    assert [s for s in settled if isinstance(s, Exception)] == []
    assert len({s.attribution_id for s in settled}) == 1
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (mc(1), 0)


def test_individual_replays_race_safely(db):
    from billing.services import add_individual_credits

    user = UserFactory()
    add_individual_credits(user=user, amount=mc(10))
    results = run_concurrently(
        lambda i: deduct_credits(user=user, org_id=None, amount=mc(1), request_id=f"r-{i % 5}"), 40
    )
    assert [r for r in results if isinstance(r, Exception)] == []
    assert CreditUsageAttribution.objects.filter(user=user).count() == 5
    assert find_all_drifts() == []


def test_random_concurrent_mix_stays_reconciled_without_deadlock():
    # given: three orgs, four members each, funded pools and allocations
    rng = random.Random(20261121)
    orgs = [OrganizationFactory() for _ in range(3)]
    members = {}
    for org in orgs:
        add_credits_to_pool(org_id=org.id, amount=mc(10_000))
        members[org.id] = [UserFactory() for _ in range(4)]
        for user in members[org.id]:
            add_member(org_id=org.id, user=user)
            allocate_credits_to_user(org_id=org.id, user=user, amount=mc(500))
    plans = [
        [
            (rng.choice(orgs).id, rng.random(), rng.randrange(1, 40), rng.randrange(4), rng.randrange(4))
            for _ in range(40)
        ]
        for _ in range(12)
    ]

    def worker(index: int) -> tuple[list[str], int]:
        unexpected: list[str] = []
        done = 0
        for step, (org_id, roll, credits, a, b) in enumerate(plans[index]):
            user, other = members[org_id][a], members[org_id][b]
            try:
                if roll < 0.35:
                    deduct_credits(
                        user=user, org_id=org_id, amount=mc(credits), request_id=f"d-{index}-{step}"
                    )
                elif roll < 0.5:
                    hold = reserve_credits(
                        user=user, org_id=org_id, amount=mc(credits), request_id=f"h-{index}-{step}"
                    )
                    if roll < 0.45:
                        settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(credits // 2))
                    else:
                        release_reservation(reservation_id=hold.reservation_id)
                elif roll < 0.65:
                    allocate_credits_to_user(org_id=org_id, user=user, amount=mc(credits))
                elif roll < 0.75:
                    adjust_allocation(org_id=org_id, user=user, allocated=mc(credits * 10))
                elif roll < 0.9:
                    transfer_credits(org_id=org_id, from_user=user, to_user=other, amount=mc(credits))
                else:
                    revoke_allocation(org_id=org_id, user=user)
                done += 1
            except ApplicationError:
                pass  # refusals are expected in a random mix; they must leave no trace
            except Exception as exc:  # deadlocks, constraint violations: the bugs we look for
                unexpected.append(f"{type(exc).__name__}: {exc}")
        return unexpected, done

    # when
    results = run_concurrently(worker, len(plans))

    # then
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert [problem for problems, _ in results for problem in problems] == []
    assert sum(done for _, done in results) > len(plans) * 40 // 2  # most steps really ran
    assert CreditUsageAttribution.objects.count() > 50
    assert find_all_drifts() == []
    call_command("reconcile_credits", "--no-progress")
    for allocation in UserCreditAllocation.objects.all():
        assert 0 <= allocation.used_credits + allocation.reserved_credits <= allocation.allocated_credits


def test_a_member_removed_while_being_allocated_ends_with_no_live_allocation():
    from organizations.services import remove_member

    for round_ in range(5):
        org = OrganizationFactory()
        add_credits_to_pool(org_id=org.id, amount=mc(1000))
        admin, member = UserFactory(), UserFactory()
        add_member(org_id=org.id, user=admin, role="admin")
        add_member(org_id=org.id, user=member)

        def work(i: int, org_id: str = org.id, member=member) -> object:
            if i == 0:
                return remove_member(org_id=org_id, user=member)
            return allocate_credits_to_user(org_id=org_id, user=member, amount=mc(10))

        results = run_concurrently(work, 4)
        unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, ApplicationError)]
        assert unexpected == [], round_
        assert not UserCreditAllocation.objects.filter(org=org, user=member, is_active=True).exists(), round_
        assert find_all_drifts() == []
