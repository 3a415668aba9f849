"""Credit requests under concurrency (billing/services/credit_requests.py): a request leaves
``pending`` once, under its row lock, whoever races for it; the ledger stays reconciled."""

import pytest
from django.core.management import call_command

from billing.errors import AllocationExceedsPool, CreditRequestAlreadyOpen, CreditRequestNotPending
from billing.models import AuditEvent, CreditRequest, UserCreditAllocation
from billing.permissions import Deciders
from billing.selectors.reconciliation import find_all_drifts
from billing.services import add_credits_to_pool, allocate_credits_to_user, create_department
from billing.services.credit_requests import (
    approve_credit_request,
    decline_credit_request,
    request_credits,
)
from organizations.services import add_member
from tests.concurrency import run_concurrently
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, pool_of

pytestmark = pytest.mark.django_db(transaction=True)

ADMINS = Deciders(department_ids=None)


def _org_with_deciders(deciders: int = 4):
    """An org with 1,000 credits, a member holding 100 of them, and ``deciders`` admins."""
    org = OrganizationFactory()
    add_credits_to_pool(org_id=org.id, amount=mc(1000), actor_label="test")
    member = UserFactory()
    add_member(org_id=org.id, user=member)
    allocate_credits_to_user(org_id=org.id, user=member, amount=mc(100))
    admins = [UserFactory() for _ in range(deciders)]
    for admin in admins:
        add_member(org_id=org.id, user=admin, role="admin")
    return org, member, admins


def _allocated(org, user) -> int:
    return UserCreditAllocation.objects.get(org=org, user=user, is_active=True).allocated_credits


def _assert_reconciled(org) -> None:
    assert find_all_drifts(org.id) == []
    call_command("reconcile_credits", "--no-progress")


def test_approvals_racing_raise_the_allocation_once():
    # given: one pending request for 50 credits and four admins about to approve it
    org, member, admins = _org_with_deciders(4)
    request = request_credits(org_id=org.id, requester=member, credits=mc(50), reason="eval")

    # when: all four approve at once, each on its own connection
    results = run_concurrently(
        lambda i: approve_credit_request(
            org_id=org.id, request_id=request.pk, actor=admins[i], deciders=ADMINS
        ),
        4,
    )

    # then: one approval raised the allocation; the others found it no longer pending
    won = [r for r in results if isinstance(r, CreditRequest)]
    assert len(won) == 1, results
    assert all(isinstance(r, CreditRequestNotPending) for r in results if r not in won)
    assert _allocated(org, member) == mc(150)
    assert pool_of(org).available_credits == mc(1000) - mc(150)
    assert AuditEvent.objects.filter(action="allocation.increased").count() == 1
    assert AuditEvent.objects.filter(action="credit_request.approved").count() == 1
    _assert_reconciled(org)


def test_a_manager_and_an_admin_approving_at_once_raise_the_department_allocation_once():
    org, member, admins = _org_with_deciders(1)
    engineer, manager = UserFactory(), UserFactory()
    for user in (engineer, manager):
        add_member(org_id=org.id, user=user)
    eng = create_department(org_id=org.id, name="Eng", budget=mc(300), managers=[manager])
    allocate_credits_to_user(org_id=org.id, user=engineer, amount=mc(100), department_id=eng.pk)
    request = request_credits(org_id=org.id, requester=engineer, credits=mc(150), reason="eval")
    deciders = [(admins[0], ADMINS), (manager, Deciders(department_ids=frozenset({eng.pk})))]

    results = run_concurrently(
        lambda i: approve_credit_request(
            org_id=org.id, request_id=request.pk, actor=deciders[i][0], deciders=deciders[i][1]
        ),
        2,
    )

    assert sum(isinstance(r, CreditRequest) for r in results) == 1, results
    assert sum(isinstance(r, CreditRequestNotPending) for r in results) == 1, results
    assert _allocated(org, engineer) == mc(250)
    eng.refresh_from_db()
    assert eng.allocated_credits == mc(250)
    _assert_reconciled(org)


def test_an_approval_racing_a_decline_has_one_winner():
    # Repeated: either side may win; in every round exactly one does, and the ledger matches it.
    org, member, admins = _org_with_deciders(2)
    for round_ in range(6):
        before = _allocated(org, member)
        request = request_credits(org_id=org.id, requester=member, credits=mc(10), reason=f"round {round_}")

        def decide(i: int, request_id: int = request.pk) -> CreditRequest:
            decide_with = approve_credit_request if i == 0 else decline_credit_request
            return decide_with(org_id=org.id, request_id=request_id, actor=admins[i], deciders=ADMINS)

        results = run_concurrently(decide, 2)

        assert sum(isinstance(r, CreditRequest) for r in results) == 1, results
        assert sum(isinstance(r, CreditRequestNotPending) for r in results) == 1, results
        final = CreditRequest.objects.get(pk=request.pk)
        assert _allocated(org, member) == before + (mc(10) if final.status == "approved" else 0)
        assert (final.allocation_id is not None) == (final.status == "approved")
    _assert_reconciled(org)


def test_a_member_asking_many_times_at_once_gets_one_pending_request():
    org, member, _ = _org_with_deciders(1)

    results = run_concurrently(
        lambda i: request_credits(org_id=org.id, requester=member, credits=mc(i + 1), reason="again"), 6
    )

    assert sum(isinstance(r, CreditRequest) for r in results) == 1, results
    assert all(isinstance(r, CreditRequestAlreadyOpen) for r in results if not isinstance(r, CreditRequest))
    assert CreditRequest.objects.filter(requester=member, status="pending").count() == 1


def test_approvals_of_many_requests_never_overdraw_the_pool():
    # given: twenty members each asking for 60 credits of the 900 the pool still has free
    org, _, admins = _org_with_deciders(1)
    members = [UserFactory() for _ in range(20)]
    requests = []
    for member in members:
        add_member(org_id=org.id, user=member)
        requests.append(request_credits(org_id=org.id, requester=member, credits=mc(60), reason="eval"))

    # when: all are approved at once
    results = run_concurrently(
        lambda i: approve_credit_request(
            org_id=org.id, request_id=requests[i].pk, actor=admins[0], deciders=ADMINS
        ),
        20,
    )

    # then: exactly 15 fit; the others are refused by the pool and stay pending
    assert sum(isinstance(r, CreditRequest) for r in results) == 15, results
    assert all(isinstance(r, AllocationExceedsPool) for r in results if not isinstance(r, CreditRequest))
    assert CreditRequest.objects.filter(status="pending").count() == 5
    assert pool_of(org).available_credits == 0
    _assert_reconciled(org)
