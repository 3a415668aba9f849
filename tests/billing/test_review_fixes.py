"""Edge cases found in review: request ids shared across deduct and reserve, holds retried
after they ended, deactivated orgs, unrepresentable input, replayed top-ups."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from billing.errors import (
    AllocationExpired,
    OrganizationInactive,
    OrganizationNotFound,
    RequestIdConflict,
    ReservationNotHeld,
)
from billing.models import CreditReservation, CreditUsageAttribution, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_credits_to_pool,
    adjust_allocation,
    allocate_credits_to_user,
    deduct_credits,
    expire_reservations,
    has_sufficient_credits,
    release_reservation,
    reserve_credits,
    revoke_allocation,
    settle_reservation,
    transfer_credits,
)
from organizations.models import Organization
from organizations.services import add_member
from orgbilling.errors import Conflict, ValidationFailed
from tests.factories import UserFactory
from tests.helpers import mc, snapshot_balances

pytestmark = pytest.mark.django_db


def test_reserving_a_request_id_that_was_already_charged_is_refused(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="R")
    before = snapshot_balances()
    with pytest.raises(RequestIdConflict):
        reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="R")
    assert snapshot_balances() == before


def test_settling_after_a_direct_charge_of_the_same_id_charges_once_and_frees_the_hold(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="R")
    charged = deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="R")
    result = settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(1))
    assert result.replayed
    assert result.attribution_id == charged.attribution_id
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (mc(1), 0)
    assert CreditReservation.objects.get(pk=hold.reservation_id).status == "released"
    assert find_all_drifts() == []


@pytest.mark.parametrize("end", ["release", "settle"])
def test_retrying_a_reserve_after_the_hold_ended_is_refused(make_funded_member, end):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="R")
    if end == "release":
        release_reservation(reservation_id=hold.reservation_id)
    else:
        settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(1))
    with pytest.raises(ReservationNotHeld):
        reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="R")


def test_a_hold_that_expired_mid_call_is_settled_late_not_given_away(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="long", ttl_seconds=1)
    assert expire_reservations(now=timezone.now() + timedelta(seconds=5)) == 1
    result = settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(3))
    assert result.credits_charged == mc(3)
    row = CreditUsageAttribution.objects.get(pk=result.attribution_id)
    assert row.request_metadata["late_settlement"] is True
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (mc(3), 0)
    assert find_all_drifts() == []


def test_caller_metadata_cannot_fake_the_settle_replay_check(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(5), request_id="R")
    settle_reservation(
        reservation_id=hold.reservation_id, actual_amount=mc(3), metadata={"requested_credits": 1}
    )
    assert settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(3)).replayed
    with pytest.raises(RequestIdConflict):
        settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(1))


def test_a_deactivated_org_stops_spending_but_can_still_be_wound_down(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    Organization.objects.filter(pk=org.pk).update(is_active=False)
    before = snapshot_balances()
    with pytest.raises(OrganizationInactive):
        deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="x")
    with pytest.raises(OrganizationInactive):
        reserve_credits(user=user, org_id=org.id, amount=mc(1), request_id="y")
    with pytest.raises(OrganizationInactive):
        adjust_allocation(org_id=org.id, user=user, allocated=mc(20))
    assert not has_sufficient_credits(user=user, org_id=org.id, amount=1)
    assert snapshot_balances() == before
    adjust_allocation(org_id=org.id, user=user, allocated=mc(5))
    assert revoke_allocation(org_id=org.id, user=user).returned_to_pool == mc(5)


def test_empty_org_id_never_replays_an_individual_charge(db):
    from billing.services import add_individual_credits

    user = UserFactory()
    add_individual_credits(user=user, amount=mc(5))
    deduct_credits(user=user, org_id=None, amount=mc(1), request_id="R")
    with pytest.raises(OrganizationNotFound):
        deduct_credits(user=user, org_id="", amount=mc(1), request_id="R")


@pytest.mark.parametrize(
    "fields",
    [
        {"request_id": "x" * 129},
        {"request_id": ""},
        {"request_id": "nul\x00id"},
        {"service_name": "m" * 201},
        {"service_type": "teleportation"},
        {"input_tokens": -1},
        {"output_tokens": 2**31},
        {"metadata": {"amount": Decimal("1.5")}},
        {"metadata": {"text": "nul\x00"}},
        {"metadata": {"nan": float("nan")}},
    ],
)
def test_unstorable_charge_fields_are_refused_before_anything_is_written(make_funded_member, fields):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    before = snapshot_balances()
    call = {"user": user, "org_id": org.id, "amount": mc(1), "request_id": "ok", **fields}
    with pytest.raises(ValidationFailed):
        deduct_credits(**call)
    if set(fields) == {"request_id"}:
        with pytest.raises(ValidationFailed):
            reserve_credits(user=user, org_id=org.id, amount=mc(1), request_id=fields["request_id"])
    assert snapshot_balances() == before


def test_a_replayed_top_up_adds_credits_once(make_funded_member):
    org, _, _ = make_funded_member(pool=100, allocation=10)
    first = add_credits_to_pool(org_id=org.id, amount=mc(50), purchase_amount="0.50", external_id="evt_1")
    again = add_credits_to_pool(org_id=org.id, amount=mc(50), purchase_amount="0.50", external_id="evt_1")
    assert again.replayed
    assert again.history.pk == first.history.pk
    assert again.pool.total_credits == mc(150)
    with pytest.raises(Conflict):
        add_credits_to_pool(org_id=org.id, amount=mc(60), external_id="evt_1")


def test_allocation_expiry_must_be_in_the_future_and_expired_allocations_take_no_credits(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    past = timezone.now() - timedelta(minutes=1)
    with pytest.raises(ValidationFailed):
        allocate_credits_to_user(org_id=org.id, user=user, amount=mc(1), expires_at=past)
    UserCreditAllocation.objects.filter(pk=allocation.pk).update(expires_at=past)
    with pytest.raises(AllocationExpired):
        allocate_credits_to_user(org_id=org.id, user=user, amount=mc(1))
    future = timezone.now() + timedelta(days=1)
    assert allocate_credits_to_user(
        org_id=org.id, user=user, amount=mc(1), expires_at=future
    ).allocation.pk == (allocation.pk)
    other = UserFactory()
    add_member(org_id=org.id, user=other)
    allocate_credits_to_user(org_id=org.id, user=other, amount=mc(1))
    UserCreditAllocation.objects.filter(user=other).update(expires_at=past)
    with pytest.raises(AllocationExpired):
        transfer_credits(org_id=org.id, from_user=user, to_user=other, amount=mc(1))


def test_reconcile_refuses_a_batch_size_below_one():
    with pytest.raises(CommandError):
        call_command("reconcile_credits", "--batch-size", "0", "--no-progress")


def test_reconcile_catches_credits_minted_behind_the_ledger(make_funded_member):
    org, _, _ = make_funded_member(pool=100, allocation=10)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE organization_credit_pools SET total_credits = total_credits + 1000 WHERE org_id = %s",
            [org.id],
        )
    drifts = find_all_drifts()
    # Both the credit history and the grants fail to explain the new total.
    assert [d.check for d in drifts] == ["pool_total_equals_credits_added", "pool_total_equals_sum_of_grants"]
