"""Charging services: has_sufficient_credits, deduct, reserve → settle / release, individual."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.errors import (
    AllocationExpired,
    InsufficientCredits,
    NoActiveAllocation,
    NotAMember,
    RequestIdConflict,
    ReservationNotFound,
    ReservationNotHeld,
)
from billing.models import (
    AuditEvent,
    CreditReservation,
    CreditUsageAttribution,
    IndividualCreditBalance,
    OrganizationCreditPool,
    UserCreditAllocation,
)
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_individual_credits,
    deduct_credits,
    expire_reservations,
    has_sufficient_credits,
    release_reservation,
    reserve_credits,
    revoke_allocation,
    settle_reservation,
)
from organizations.models import OrganizationMember
from tests.factories import UserFactory
from tests.helpers import mc, snapshot_balances

pytestmark = pytest.mark.django_db


def test_deduct_charges_allocation_and_pool_and_appends_attribution(make_funded_member):
    org, user, allocation = make_funded_member(pool=1000, allocation=100)
    result = deduct_credits(
        user=user,
        org_id=org.id,
        amount=mc("1.5"),
        request_id="req-1",
        service_name="gpt-4o",
        input_tokens=1000,
        output_tokens=200,
        metadata={"route": "chat"},
    )
    assert result.success and not result.replayed and result.reason is None
    assert result.remaining_credits == mc("98.5")
    row = CreditUsageAttribution.objects.get(pk=result.attribution_id)
    assert (row.org_id, row.user_id, row.allocation_id) == (org.id, user.pk, allocation.pk)
    assert (row.service_name, row.input_tokens, row.output_tokens) == ("gpt-4o", 1000, 200)
    assert row.credits_used == mc("1.5")
    assert row.balance_after == mc("98.5")
    assert row.request_metadata == {"route": "chat"}
    allocation.refresh_from_db()
    assert allocation.used_credits == mc("1.5")
    assert OrganizationCreditPool.objects.get(org=org).used_credits == mc("1.5")


def test_replayed_request_id_returns_first_result_and_charges_once(make_funded_member):
    org, user, allocation = make_funded_member(pool=1000, allocation=100)
    first = deduct_credits(user=user, org_id=org.id, amount=mc(3), request_id="same")
    again = deduct_credits(user=user, org_id=org.id, amount=mc(3), request_id="same")
    assert again.replayed
    assert (again.attribution_id, again.remaining_credits, again.credits_charged) == (
        first.attribution_id,
        first.remaining_credits,
        first.credits_charged,
    )
    allocation.refresh_from_db()
    assert allocation.used_credits == mc(3)
    assert CreditUsageAttribution.objects.count() == 1


def test_request_id_reused_with_another_amount_or_user_conflicts(make_funded_member):
    org, user, _ = make_funded_member(pool=1000, allocation=100)
    _, other, _ = make_funded_member(pool=0, allocation=10, org=org)
    deduct_credits(user=user, org_id=org.id, amount=mc(3), request_id="k")
    before = snapshot_balances()
    with pytest.raises(RequestIdConflict):
        deduct_credits(user=user, org_id=org.id, amount=mc(4), request_id="k")
    with pytest.raises(RequestIdConflict):
        deduct_credits(user=other, org_id=org.id, amount=mc(3), request_id="k")
    assert snapshot_balances() == before


def test_deduction_refusals_change_nothing(make_funded_member):
    org, user, allocation = make_funded_member(pool=1000, allocation=10)
    outsider = UserFactory()
    _, suspended, _ = make_funded_member(pool=0, allocation=1, org=org)
    OrganizationMember.objects.filter(user=suspended).update(status="suspended")
    _, expired, expired_allocation = make_funded_member(pool=0, allocation=1, org=org)
    UserCreditAllocation.objects.filter(pk=expired_allocation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    _, revoked, _ = make_funded_member(pool=0, allocation=1, org=org)
    revoke_allocation(org_id=org.id, user=revoked)
    before = snapshot_balances()
    cases = [
        (user, mc("10.001"), InsufficientCredits),
        (outsider, mc(1), NotAMember),
        (suspended, mc(1), NotAMember),
        (expired, mc(1), AllocationExpired),
        (revoked, mc(1), NoActiveAllocation),
    ]
    for who, amount, error in cases:
        with pytest.raises(error) as info:
            deduct_credits(user=who, org_id=org.id, amount=amount, request_id=f"x-{who.pk}")
        assert info.value.code == error.code
        assert snapshot_balances() == before, error.__name__
    with pytest.raises(InsufficientCredits):
        reserve_credits(user=user, org_id=org.id, amount=mc(11), request_id="too-big")
    assert snapshot_balances() == before


def test_exact_balance_can_be_spent_to_zero(make_funded_member):
    org, user, allocation = make_funded_member(pool=10, allocation=10)
    deduct_credits(user=user, org_id=org.id, amount=mc(10), request_id="all")
    assert not has_sufficient_credits(user=user, org_id=org.id, amount=1)
    allocation.refresh_from_db()
    assert allocation.free_credits == 0
    assert AuditEvent.objects.filter(action="allocation.exhausted", target_id=str(allocation.pk)).count() == 1


def test_has_sufficient_credits_answers_without_changing_anything(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=5)
    assert has_sufficient_credits(user=user, org_id=org.id, amount=mc(5))
    assert not has_sufficient_credits(user=user, org_id=org.id, amount=mc("5.001"))
    assert not has_sufficient_credits(user=UserFactory(), org_id=org.id, amount=1)
    assert not has_sufficient_credits(user=user, org_id=None, amount=1)


def test_reserve_then_settle_charges_actual_cost_and_frees_the_rest(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(4), request_id="call-1")
    allocation.refresh_from_db()
    assert allocation.reserved_credits == mc(4)
    assert hold.remaining_credits == mc(6)
    result = settle_reservation(
        reservation_id=hold.reservation_id, actual_amount=mc("1.25"), service_name="m"
    )
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (mc("1.25"), 0)
    assert result.remaining_credits == mc("8.75")
    row = CreditUsageAttribution.objects.get(pk=result.attribution_id)
    assert row.request_id == "call-1"
    reservation = CreditReservation.objects.get(pk=hold.reservation_id)
    assert (reservation.status, reservation.credits_charged, reservation.attribution_id) == (
        "settled",
        mc("1.25"),
        row.pk,
    )
    again = settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc("1.25"))
    assert again.replayed and again.attribution_id == row.pk
    with pytest.raises(RequestIdConflict):
        settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(2))
    with pytest.raises(ReservationNotHeld):
        release_reservation(reservation_id=hold.reservation_id)
    assert find_all_drifts() == []


def test_settle_above_the_hold_charges_only_what_the_allocation_has(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(4), request_id="big")
    result = settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(25))
    assert result.credits_charged == mc(10)
    row = CreditUsageAttribution.objects.get(pk=result.attribution_id)
    assert row.request_metadata["uncharged_credits"] == mc(15)
    allocation.refresh_from_db()
    assert allocation.free_credits == 0
    assert find_all_drifts() == []


def test_release_returns_the_hold_once(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(4), request_id="fail")
    released = release_reservation(reservation_id=hold.reservation_id)
    assert released.status == "released"
    release_reservation(reservation_id=hold.reservation_id)
    allocation.refresh_from_db()
    assert (allocation.reserved_credits, allocation.used_credits) == (0, 0)
    with pytest.raises(ReservationNotHeld):
        settle_reservation(reservation_id=hold.reservation_id, actual_amount=1)
    with pytest.raises(ReservationNotFound):
        release_reservation(reservation_id=999_999)


def test_reserve_is_idempotent_on_request_id(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    first = reserve_credits(user=user, org_id=org.id, amount=mc(4), request_id="h")
    again = reserve_credits(user=user, org_id=org.id, amount=mc(4), request_id="h")
    assert again.replayed and again.reservation_id == first.reservation_id
    allocation.refresh_from_db()
    assert allocation.reserved_credits == mc(4)
    with pytest.raises(RequestIdConflict):
        reserve_credits(user=user, org_id=org.id, amount=mc(5), request_id="h")


def test_expired_holds_are_released(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    reserve_credits(user=user, org_id=org.id, amount=mc(4), request_id="stale", ttl_seconds=1)
    reserve_credits(user=user, org_id=org.id, amount=mc(1), request_id="fresh")
    assert expire_reservations(now=timezone.now() + timedelta(seconds=5)) == 1
    allocation.refresh_from_db()
    assert allocation.reserved_credits == mc(1)
    assert CreditReservation.objects.get(request_id="stale").status == "expired"


def test_individual_credits_fallback(db):
    user = UserFactory()
    add_individual_credits(user=user, amount=mc(5))
    assert has_sufficient_credits(user=user, org_id=None, amount=mc(5))
    result = deduct_credits(user=user, org_id=None, amount=mc(2), request_id="solo-1")
    assert result.remaining_credits == mc(3)
    row = CreditUsageAttribution.objects.get(pk=result.attribution_id)
    assert row.org_id is None and row.allocation_id is None
    replay = deduct_credits(user=user, org_id=None, amount=mc(2), request_id="solo-1")
    assert replay.replayed
    hold = reserve_credits(user=user, org_id=None, amount=mc(2), request_id="solo-2")
    settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(1))
    balance = IndividualCreditBalance.objects.get(user=user)
    assert (balance.used_credits, balance.reserved_credits, balance.free_credits) == (mc(3), 0, mc(2))
    before = snapshot_balances()
    with pytest.raises(InsufficientCredits):
        deduct_credits(user=user, org_id=None, amount=mc(3), request_id="solo-3")
    assert snapshot_balances() == before
    # Two users may use the same request id for their own credits.
    other = UserFactory()
    add_individual_credits(user=other, amount=mc(1))
    assert not deduct_credits(user=other, org_id=None, amount=mc(1), request_id="solo-1").replayed
    assert find_all_drifts() == []


@pytest.mark.parametrize("prepared", [True, False])
def test_deduction_behaves_the_same_with_and_without_prepared_statements(
    settings, make_funded_member, prepared
):
    settings.LEDGER_PREPARED_STATEMENTS = prepared
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    for n in range(7):  # past psycopg's prepare threshold
        deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id=f"p-{n}")
    assert deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="p-0").replayed
    before = snapshot_balances()
    with pytest.raises(InsufficientCredits):
        deduct_credits(user=user, org_id=org.id, amount=mc(4), request_id="p-big")
    assert snapshot_balances() == before
    allocation.refresh_from_db()
    assert allocation.used_credits == mc(7)
    assert find_all_drifts() == []
