"""Departments in the ledger: budgets carved from the pool, department allocations carved from
the budget, refusals, expiry and deletion, reconciliation, and races on real connections."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing.errors import (
    AllocationExceedsDepartmentBudget,
    AllocationExceedsPool,
    AllocationInOtherDepartment,
    DepartmentAccessDenied,
    DepartmentBudgetBelowAllocated,
    DepartmentHasAllocations,
    DepartmentNameTaken,
    DepartmentNotFound,
)
from billing.models import Department, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_credits_to_pool,
    adjust_allocation,
    allocate_credits_to_user,
    create_department,
    deduct_credits,
    delete_department,
    revoke_allocation,
    transfer_credits,
    update_department,
)
from billing.services.expiry import expire_allocations
from organizations.services import add_member
from tests.concurrency import run_concurrently
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, pool_of


def _org_with_members(pool: int, members: int):
    org = OrganizationFactory()
    add_credits_to_pool(org_id=org.id, amount=mc(pool), actor_label="test")
    users = [UserFactory() for _ in range(members)]
    for user in users:
        add_member(org_id=org.id, user=user, actor_label="test")
    return org, users


def _department(pk: int) -> Department:
    return Department.objects.get(pk=pk)


@pytest.mark.django_db
class TestBudgets:
    def test_a_budget_is_carved_from_the_pool(self):
        org, (manager,) = _org_with_members(1000, 1)

        department = create_department(org_id=org.id, name="Engineering", budget=mc(400), managers=[manager])

        pool = pool_of(org)
        assert (pool.total_credits, pool.allocated_credits, pool.available_credits) == (
            mc(1000),
            mc(400),
            mc(600),
        )
        assert list(department.managers.all()) == [manager]
        assert find_all_drifts(org.id) == []

    def test_a_budget_larger_than_the_pool_is_refused(self):
        org, _ = _org_with_members(100, 0)

        with pytest.raises(AllocationExceedsPool):
            create_department(org_id=org.id, name="Sales", budget=mc(101))

        assert Department.objects.filter(org=org).count() == 0
        assert pool_of(org).allocated_credits == 0

    def test_names_are_unique_among_live_departments(self):
        org, _ = _org_with_members(100, 0)
        first = create_department(org_id=org.id, name="Sales", budget=mc(10))

        with pytest.raises(DepartmentNameTaken):
            create_department(org_id=org.id, name="Sales", budget=mc(10))
        delete_department(org_id=org.id, department_id=first.pk)
        again = create_department(org_id=org.id, name="Sales", budget=mc(10))

        assert again.pk != first.pk
        assert pool_of(org).allocated_credits == mc(10)

    def test_a_department_allocation_is_carved_from_the_budget_not_the_pool(self):
        org, (member,) = _org_with_members(1000, 1)
        department = create_department(org_id=org.id, name="Eng", budget=mc(400))

        change = allocate_credits_to_user(
            org_id=org.id, user=member, amount=mc(150), department_id=department.pk
        )

        assert change.allocation.department_id == department.pk
        assert _department(department.pk).allocated_credits == mc(150)
        assert pool_of(org).allocated_credits == mc(400)  # the budget, counted once
        assert find_all_drifts(org.id) == []

    def test_beyond_the_budget_is_refused_even_with_a_free_pool(self):
        org, (member,) = _org_with_members(1000, 1)
        department = create_department(org_id=org.id, name="Eng", budget=mc(100))

        with pytest.raises(AllocationExceedsDepartmentBudget):
            allocate_credits_to_user(org_id=org.id, user=member, amount=mc(101), department_id=department.pk)

        assert not UserCreditAllocation.objects.filter(org=org, user=member).exists()
        assert _department(department.pk).allocated_credits == 0

    def test_shrinking_below_what_is_allocated_is_refused(self):
        org, (member,) = _org_with_members(1000, 1)
        department = create_department(org_id=org.id, name="Eng", budget=mc(100))
        allocate_credits_to_user(org_id=org.id, user=member, amount=mc(60), department_id=department.pk)

        with pytest.raises(DepartmentBudgetBelowAllocated):
            update_department(org_id=org.id, department_id=department.pk, budget=mc(59))
        update_department(org_id=org.id, department_id=department.pk, budget=mc(60))

        assert _department(department.pk).budget_credits == mc(60)
        assert pool_of(org).allocated_credits == mc(60)
        assert find_all_drifts(org.id) == []

    def test_a_department_with_active_allocations_cannot_be_deleted(self):
        org, (member,) = _org_with_members(1000, 1)
        department = create_department(org_id=org.id, name="Eng", budget=mc(100))
        allocate_credits_to_user(org_id=org.id, user=member, amount=mc(60), department_id=department.pk)

        with pytest.raises(DepartmentHasAllocations):
            delete_department(org_id=org.id, department_id=department.pk)

        assert _department(department.pk).deleted_at is None

    def test_deleting_returns_the_unused_budget_and_keeps_what_was_consumed(self):
        org, (member,) = _org_with_members(1000, 1)
        department = create_department(org_id=org.id, name="Eng", budget=mc(100))
        allocate_credits_to_user(org_id=org.id, user=member, amount=mc(60), department_id=department.pk)
        deduct_credits(user=member, org_id=org.id, amount=mc(25), request_id="d-1")
        revoke_allocation(org_id=org.id, user=member)

        result = delete_department(org_id=org.id, department_id=department.pk)

        assert result.returned_to_pool == mc(75)
        deleted = _department(department.pk)
        assert (deleted.budget_credits, deleted.allocated_credits) == (mc(25), mc(25))
        pool = pool_of(org)
        assert (pool.allocated_credits, pool.used_credits) == (mc(25), mc(25))
        assert find_all_drifts(org.id) == []
        with pytest.raises(DepartmentNotFound):
            update_department(org_id=org.id, department_id=department.pk, budget=mc(50))


@pytest.mark.django_db
class TestDepartmentAllocations:
    def test_revoking_returns_the_unused_credits_to_the_department(self):
        org, (member,) = _org_with_members(1000, 1)
        department = create_department(org_id=org.id, name="Eng", budget=mc(100))
        allocate_credits_to_user(org_id=org.id, user=member, amount=mc(60), department_id=department.pk)
        deduct_credits(user=member, org_id=org.id, amount=mc(10), request_id="d-1")

        change = revoke_allocation(org_id=org.id, user=member)

        assert change.returned_to_pool == mc(50)
        assert _department(department.pk).allocated_credits == mc(10)
        assert pool_of(org).allocated_credits == mc(100)
        assert find_all_drifts(org.id) == []

    def test_expiry_returns_the_unused_credits_to_the_department(self):
        org, (member,) = _org_with_members(1000, 1)
        department = create_department(org_id=org.id, name="Eng", budget=mc(100))
        allocate_credits_to_user(
            org_id=org.id,
            user=member,
            amount=mc(60),
            department_id=department.pk,
            expires_at=timezone.now() + timedelta(hours=1),
        )

        outcome = expire_allocations(now=timezone.now() + timedelta(hours=2))

        assert [e.returned_to_pool for e in outcome.expired] == [mc(60)]
        assert _department(department.pk).allocated_credits == 0
        assert pool_of(org).allocated_credits == mc(100)
        assert find_all_drifts(org.id) == []

    def test_raising_draws_on_the_budget_and_is_refused_beyond_it(self):
        org, (member,) = _org_with_members(1000, 1)
        department = create_department(org_id=org.id, name="Eng", budget=mc(100))
        allocate_credits_to_user(org_id=org.id, user=member, amount=mc(60), department_id=department.pk)

        adjust_allocation(org_id=org.id, user=member, allocated=mc(100))
        with pytest.raises(AllocationExceedsDepartmentBudget):
            adjust_allocation(org_id=org.id, user=member, allocated=mc(101))

        assert _department(department.pk).allocated_credits == mc(100)
        assert pool_of(org).allocated_credits == mc(100)

    def test_a_member_is_in_one_department_at_a_time(self):
        org, (member,) = _org_with_members(1000, 1)
        eng = create_department(org_id=org.id, name="Eng", budget=mc(100))
        sales = create_department(org_id=org.id, name="Sales", budget=mc(100))
        allocate_credits_to_user(org_id=org.id, user=member, amount=mc(10), department_id=eng.pk)

        with pytest.raises(AllocationInOtherDepartment):
            allocate_credits_to_user(org_id=org.id, user=member, amount=mc(10), department_id=sales.pk)
        with pytest.raises(AllocationInOtherDepartment):
            allocate_credits_to_user(org_id=org.id, user=member, amount=mc(10))

        assert _department(sales.pk).allocated_credits == 0
        assert pool_of(org).allocated_credits == mc(200)

    def test_a_transfer_stays_inside_one_department(self):
        org, (a, b, c) = _org_with_members(1000, 3)
        eng = create_department(org_id=org.id, name="Eng", budget=mc(100))
        allocate_credits_to_user(org_id=org.id, user=a, amount=mc(50), department_id=eng.pk)
        allocate_credits_to_user(org_id=org.id, user=c, amount=mc(50))

        result = transfer_credits(org_id=org.id, from_user=a, to_user=b, amount=mc(20))
        with pytest.raises(AllocationInOtherDepartment):
            transfer_credits(org_id=org.id, from_user=a, to_user=c, amount=mc(5))

        assert result.target.department_id == eng.pk
        assert _department(eng.pk).allocated_credits == mc(50)
        assert find_all_drifts(org.id) == []

    def test_a_managers_write_outside_their_department_is_refused_under_the_lock(self):
        org, (member, other) = _org_with_members(1000, 2)
        eng = create_department(org_id=org.id, name="Eng", budget=mc(100))
        sales = create_department(org_id=org.id, name="Sales", budget=mc(100))
        allocate_credits_to_user(org_id=org.id, user=member, amount=mc(50), department_id=sales.pk)
        allocate_credits_to_user(org_id=org.id, user=other, amount=mc(50))

        with pytest.raises(DepartmentAccessDenied):
            adjust_allocation(org_id=org.id, user=member, allocated=mc(10), only_department_id=eng.pk)
        with pytest.raises(DepartmentAccessDenied):
            revoke_allocation(org_id=org.id, user=other, only_department_id=eng.pk)
        with pytest.raises(DepartmentAccessDenied):
            transfer_credits(
                org_id=org.id, from_user=member, to_user=other, amount=mc(1), only_department_id=eng.pk
            )

        assert UserCreditAllocation.objects.get(org=org, user=member, is_active=True).allocated_credits == mc(
            50
        )

    def test_a_department_of_another_org_is_not_found(self):
        org, (member,) = _org_with_members(1000, 1)
        elsewhere, _ = _org_with_members(1000, 0)
        foreign = create_department(org_id=elsewhere.id, name="Eng", budget=mc(100))

        with pytest.raises(DepartmentNotFound):
            allocate_credits_to_user(org_id=org.id, user=member, amount=mc(1), department_id=foreign.pk)
        with pytest.raises(DepartmentNotFound):
            update_department(org_id=org.id, department_id=foreign.pk, budget=0)

        assert _department(foreign.pk).budget_credits == mc(100)


@pytest.mark.django_db
def test_reconciliation_reports_a_drifted_department():
    org, (member,) = _org_with_members(1000, 1)
    department = create_department(org_id=org.id, name="Eng", budget=mc(100))
    allocate_credits_to_user(org_id=org.id, user=member, amount=mc(40), department_id=department.pk)
    with connection.cursor() as cursor:  # a bug's footprint: the counter no longer matches its rows
        cursor.execute(
            "UPDATE departments SET allocated_credits = allocated_credits + 1 WHERE id = %s", [department.pk]
        )

    checks = {drift.check for drift in find_all_drifts(org.id)}

    assert checks == {"department_allocated_equals_sum_of_allocations"}


@pytest.mark.django_db
def test_reconciliation_reports_a_pool_that_forgot_a_budget():
    org, _ = _org_with_members(1000, 0)
    create_department(org_id=org.id, name="Eng", budget=mc(100))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE organization_credit_pools SET allocated_credits = 0 WHERE org_id = %s", [org.id]
        )

    drifts = find_all_drifts(org.id)

    assert [(d.check, d.expected, d.actual) for d in drifts] == [
        ("pool_allocated_equals_sum_of_allocations", mc(100), 0)
    ]


@pytest.mark.django_db(transaction=True)
def test_managers_of_two_departments_allocating_at_once_end_exact_and_reconciled():
    # given: 1,000 credits, two departments of 300 each, ten members in each
    org, users = _org_with_members(1000, 20)
    eng = create_department(org_id=org.id, name="Eng", budget=mc(300))
    sales = create_department(org_id=org.id, name="Sales", budget=mc(300))
    targets = [(eng, users[i % 10]) if i % 2 == 0 else (sales, users[10 + i % 10]) for i in range(40)]

    # when: 40 allocations of 20 credits race, 20 per department (400 asked of each 300 budget)
    results = run_concurrently(
        lambda i: allocate_credits_to_user(
            org_id=org.id, user=targets[i][1], amount=mc(20), department_id=targets[i][0].pk
        ),
        40,
    )

    # then: exactly 15 fit in each budget, the rest are refused, and nothing drifts
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, AllocationExceedsDepartmentBudget) for r in refused)
    assert len(refused) == 10
    for department in (eng, sales):
        assert _department(department.pk).allocated_credits == mc(300)
        total = sum(
            a.allocated_credits
            for a in UserCreditAllocation.objects.filter(department=department, is_active=True)
        )
        assert total == mc(300)
    pool = pool_of(org)
    assert (pool.allocated_credits, pool.available_credits) == (mc(600), mc(400))
    assert find_all_drifts(org.id) == []


@pytest.mark.django_db(transaction=True)
def test_budget_changes_racing_department_allocations_never_overdraw():
    org, users = _org_with_members(1000, 10)
    eng = create_department(org_id=org.id, name="Eng", budget=mc(200))

    def work(i: int) -> object:
        if i % 2:
            return update_department(org_id=org.id, department_id=eng.pk, budget=mc(100 + 10 * i))
        return allocate_credits_to_user(
            org_id=org.id, user=users[i // 2], amount=mc(30), department_id=eng.pk
        )

    results = run_concurrently(work, 20)

    assert all(
        isinstance(r, AllocationExceedsDepartmentBudget | DepartmentBudgetBelowAllocated)
        for r in results
        if isinstance(r, Exception)
    )
    department = _department(eng.pk)
    assert 0 <= department.allocated_credits <= department.budget_credits
    assert pool_of(org).allocated_credits == department.budget_credits
    assert find_all_drifts(org.id) == []
