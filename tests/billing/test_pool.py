"""Pool and allocation services: funding, allocating, adjusting, revoking, transferring."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.errors import (
    AllocationBelowCommitted,
    AllocationExceedsPool,
    AllocationHasHolds,
    InsufficientCredits,
    InvalidAmount,
    InvalidTransfer,
    NoActiveAllocation,
    NotAMember,
    OrganizationInactive,
    OrganizationNotFound,
)
from billing.models import AuditEvent, OrgBillingHistory, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_credits_to_pool,
    adjust_allocation,
    allocate_credits_to_user,
    deduct_credits,
    reserve_credits,
    revoke_allocation,
    transfer_credits,
)
from organizations.models import Organization
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, pool_of, snapshot_balances

pytestmark = pytest.mark.django_db


def test_add_credits_to_pool_records_history_and_audit():
    org = OrganizationFactory()
    change = add_credits_to_pool(org_id=org.id, amount=mc(5000), purchase_amount="50.00", external_id="pay_1")
    assert change.pool.total_credits == mc(5000)
    assert pool_of(org).available_credits == mc(5000)
    history = OrgBillingHistory.objects.get(external_id="pay_1")
    assert history.event_type == "credit_purchase"
    assert str(history.amount) == "50.00"
    assert history.credits == mc(5000)
    assert AuditEvent.objects.filter(org=org, action="pool.credits_added").count() == 1


def test_add_credits_without_payment_is_a_grant():
    org = OrganizationFactory()
    add_credits_to_pool(org_id=org.id, amount=mc(10))
    assert OrgBillingHistory.objects.get(org=org).event_type == "credit_grant"


def test_allocate_takes_from_available_and_raises_existing_allocation(make_funded_member):
    org, user, allocation = make_funded_member(pool=1000, allocation=300)
    assert pool_of(org).allocated_credits == mc(300)
    change = allocate_credits_to_user(org_id=org.id, user=user, amount=mc(200))
    assert not change.created
    assert change.allocation.pk == allocation.pk
    assert change.allocation.allocated_credits == mc(500)
    assert pool_of(org).available_credits == mc(500)
    actions = list(
        AuditEvent.objects.filter(org=org, action__startswith="allocation.").values_list("action", flat=True)
    )
    assert sorted(actions) == ["allocation.created", "allocation.increased"]


def test_adjust_down_returns_credits_and_up_draws_on_pool(make_funded_member):
    org, user, _ = make_funded_member(pool=1000, allocation=300)
    adjust_allocation(org_id=org.id, user=user, allocated=mc(100))
    assert pool_of(org).available_credits == mc(900)
    adjust_allocation(org_id=org.id, user=user, allocated=mc(1000))
    assert pool_of(org).available_credits == 0
    assert UserCreditAllocation.objects.get(user=user).allocated_credits == mc(1000)


def test_revoke_returns_unused_credits_and_keeps_consumed(make_funded_member):
    org, user, allocation = make_funded_member(pool=1000, allocation=300)
    deduct_credits(user=user, org_id=org.id, amount=mc(40), request_id="r1")
    change = revoke_allocation(org_id=org.id, user=user)
    assert change.returned_to_pool == mc(260)
    allocation.refresh_from_db()
    assert not allocation.is_active
    assert allocation.allocated_credits == allocation.used_credits == mc(40)
    pool = pool_of(org)
    assert pool.available_credits == mc(960)
    assert pool.used_credits == mc(40)
    assert find_all_drifts() == []
    # A new allocation can follow a revoked one.
    assert allocate_credits_to_user(org_id=org.id, user=user, amount=mc(10)).created


def test_transfer_moves_free_credits_between_members(make_funded_member):
    org, alice, _ = make_funded_member(pool=1000, allocation=300)
    bob = UserFactory()
    add_member(org_id=org.id, user=bob)
    result = transfer_credits(org_id=org.id, from_user=alice, to_user=bob, amount=mc(120))
    assert result.source.allocated_credits == mc(180)
    assert result.target.allocated_credits == mc(120)
    assert pool_of(org).allocated_credits == mc(300)
    transfer_credits(org_id=org.id, from_user=bob, to_user=alice, amount=mc(20))
    assert UserCreditAllocation.objects.get(user=alice).allocated_credits == mc(200)
    assert find_all_drifts() == []


# -- refusals: typed error, nothing changed ------------------------------------------------------


def refusal_cases(org, user, other, outsider):
    return [
        (lambda: add_credits_to_pool(org_id="no-such-org", amount=mc(1)), OrganizationNotFound),
        (lambda: add_credits_to_pool(org_id=org.id, amount=0), InvalidAmount),
        (lambda: add_credits_to_pool(org_id=org.id, amount=-5), InvalidAmount),
        (lambda: add_credits_to_pool(org_id=org.id, amount=mc(1), purchase_amount="1.001"), InvalidAmount),
        (
            lambda: allocate_credits_to_user(org_id=org.id, user=user, amount=mc(10_000)),
            AllocationExceedsPool,
        ),
        (lambda: allocate_credits_to_user(org_id=org.id, user=outsider, amount=mc(1)), NotAMember),
        (lambda: allocate_credits_to_user(org_id=org.id, user=user, amount=0), InvalidAmount),
        (lambda: adjust_allocation(org_id=org.id, user=user, allocated=mc(10)), AllocationBelowCommitted),
        (lambda: adjust_allocation(org_id=org.id, user=user, allocated=mc(5000)), AllocationExceedsPool),
        (lambda: adjust_allocation(org_id=org.id, user=other, allocated=mc(5)), NoActiveAllocation),
        (lambda: revoke_allocation(org_id=org.id, user=other), NoActiveAllocation),
        (
            lambda: transfer_credits(org_id=org.id, from_user=user, to_user=user, amount=mc(1)),
            InvalidTransfer,
        ),
        (
            lambda: transfer_credits(org_id=org.id, from_user=user, to_user=other, amount=mc(90)),
            InsufficientCredits,
        ),
        (
            lambda: transfer_credits(org_id=org.id, from_user=other, to_user=user, amount=mc(1)),
            NoActiveAllocation,
        ),
        (lambda: transfer_credits(org_id=org.id, from_user=user, to_user=outsider, amount=mc(1)), NotAMember),
    ]


def test_every_refusal_raises_its_typed_error_and_changes_nothing(make_funded_member):
    org, user, _ = make_funded_member(pool=1000, allocation=100)
    deduct_credits(user=user, org_id=org.id, amount=mc(20), request_id="used")
    other = UserFactory()
    add_member(org_id=org.id, user=other)
    outsider = UserFactory()
    before = snapshot_balances()
    for call, error in refusal_cases(org, user, other, outsider):
        with pytest.raises(error):
            call()
        assert snapshot_balances() == before, error.__name__


def test_revoke_refuses_while_credits_are_held(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=50)
    reserve_credits(user=user, org_id=org.id, amount=mc(5), request_id="hold")
    before = snapshot_balances()
    with pytest.raises(AllocationHasHolds):
        revoke_allocation(org_id=org.id, user=user)
    assert snapshot_balances() == before


def test_deactivated_org_refuses_ledger_changes(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=50)
    Organization.objects.filter(pk=org.pk).update(is_active=False)
    with pytest.raises(OrganizationInactive):
        add_credits_to_pool(org_id=org.id, amount=mc(1))
    with pytest.raises(OrganizationInactive):
        allocate_credits_to_user(org_id=org.id, user=user, amount=mc(1))


def test_allocation_with_expiry_is_recorded(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    when = timezone.now() + timedelta(days=30)
    change = allocate_credits_to_user(org_id=org.id, user=user, amount=mc(5), expires_at=when)
    assert change.allocation.expires_at == when


def test_taking_back_unallocated_credits_lowers_the_total_only_while_they_are_unallocated(make_funded_member):
    from billing.ledger.pool import take_back_unallocated_credits

    org, _, _ = make_funded_member(pool=100, allocation=70)

    pool = take_back_unallocated_credits(org_id=org.id, amount=mc(20))
    assert pool is not None and (pool.total_credits, pool.available_credits) == (mc(80), mc(10))
    before = snapshot_balances()
    assert take_back_unallocated_credits(org_id=org.id, amount=mc(11)) is None
    assert snapshot_balances() == before
