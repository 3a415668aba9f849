"""The per-member daily cap (issue 14 §5): charges and holds of one UTC day stop at the cap
(402 ``daily_cap_reached``), a hold counts until it is settled or released, the next UTC day
starts from zero, and racing charges never pass it."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from billing.errors import DailyCapReached, InsufficientCredits
from billing.models import UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    adjust_allocation,
    deduct_credits,
    release_reservation,
    reserve_credits,
    settle_reservation,
)
from tests.concurrency import run_concurrently
from tests.helpers import assert_error, mc, snapshot_balances

NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _capped_member(make_funded_member, cap: int):
    org, user, allocation = make_funded_member(pool=1000, allocation=100)
    adjust_allocation(org_id=org.id, user=user, allocated=mc(100), daily_cap=mc(cap))
    return org, user


def _row(org, user) -> UserCreditAllocation:
    return UserCreditAllocation.objects.get(org=org, user=user, is_active=True)


@pytest.mark.django_db
class TestDailyCap:
    def test_charges_stop_at_the_cap_and_a_refusal_changes_nothing(self, make_funded_member):
        org, user = _capped_member(make_funded_member, cap=10)
        deduct_credits(user=user, org_id=org.id, amount=mc(7), request_id="r-1")
        before = snapshot_balances()

        with pytest.raises(DailyCapReached):
            deduct_credits(user=user, org_id=org.id, amount=mc("3.001"), request_id="r-2")

        assert snapshot_balances() == before
        deduct_credits(user=user, org_id=org.id, amount=mc(3), request_id="r-3")
        assert _row(org, user).cap_day_spent == mc(10)

    def test_a_hold_counts_until_released(self, make_funded_member):
        org, user = _capped_member(make_funded_member, cap=10)
        held = reserve_credits(user=user, org_id=org.id, amount=mc(8), request_id="h-1")

        with pytest.raises(DailyCapReached):
            deduct_credits(user=user, org_id=org.id, amount=mc(3), request_id="r-1")
        release_reservation(reservation_id=held.reservation_id)
        deduct_credits(user=user, org_id=org.id, amount=mc(3), request_id="r-2")

        assert _row(org, user).cap_day_spent == mc(3)

    def test_settling_below_the_hold_frees_the_difference(self, make_funded_member):
        org, user = _capped_member(make_funded_member, cap=10)
        held = reserve_credits(user=user, org_id=org.id, amount=mc(8), request_id="h-1")

        settle_reservation(reservation_id=held.reservation_id, actual_amount=mc(5))
        deduct_credits(user=user, org_id=org.id, amount=mc(5), request_id="r-1")

        with pytest.raises(DailyCapReached):
            deduct_credits(user=user, org_id=org.id, amount=mc("0.001"), request_id="r-2")
        row = _row(org, user)
        assert (row.used_credits, row.cap_day_spent) == (mc(10), mc(10))

    def test_a_hold_refused_by_the_cap_on_the_orm_path_too(self, make_funded_member):
        org, user = _capped_member(make_funded_member, cap=10)
        deduct_credits(user=user, org_id=org.id, amount=mc(9), request_id="r-1")

        with pytest.raises(DailyCapReached):
            reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="h-1")

        assert _row(org, user).reserved_credits == 0

    def test_the_next_utc_day_starts_from_zero(self, make_funded_member):
        with time_machine.travel(NOON, tick=False):
            org, user = _capped_member(make_funded_member, cap=10)
            deduct_credits(user=user, org_id=org.id, amount=mc(10), request_id="r-1")
            with pytest.raises(DailyCapReached):
                deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="r-2")
        with time_machine.travel(NOON + timedelta(hours=12, seconds=1), tick=False):
            deduct_credits(user=user, org_id=org.id, amount=mc(10), request_id="r-3")
            row = _row(org, user)
        assert (row.used_credits, row.cap_day, row.cap_day_spent) == (
            mc(20),
            NOON.date() + timedelta(days=1),
            mc(10),
        )

    def test_a_hold_of_yesterday_settled_today_counts_its_charge_today(self, make_funded_member):
        with time_machine.travel(NOON + timedelta(hours=11, minutes=59), tick=False):
            org, user = _capped_member(make_funded_member, cap=10)
            held = reserve_credits(user=user, org_id=org.id, amount=mc(8), request_id="h-1")
        with time_machine.travel(NOON + timedelta(hours=12, minutes=1), tick=False):
            settle_reservation(reservation_id=held.reservation_id, actual_amount=mc(6))
            row = _row(org, user)
            with pytest.raises(DailyCapReached):
                deduct_credits(user=user, org_id=org.id, amount=mc(5), request_id="r-1")
        assert (row.cap_day, row.cap_day_spent, row.reserved_credits) == (
            NOON.date() + timedelta(days=1),
            mc(6),
            0,
        )

    def test_no_cap_means_no_limit_but_the_day_is_still_counted(self, make_funded_member):
        org, user, _ = make_funded_member(pool=1000, allocation=100)

        deduct_credits(user=user, org_id=org.id, amount=mc(60), request_id="r-1")
        adjust_allocation(org_id=org.id, user=user, allocated=mc(100), daily_cap=mc(50))

        with pytest.raises(DailyCapReached):
            deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="r-2")
        adjust_allocation(org_id=org.id, user=user, allocated=mc(100), daily_cap=None)
        deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="r-3")

    def test_free_credits_are_refused_before_the_cap(self, make_funded_member):
        org, user = _capped_member(make_funded_member, cap=10)
        with pytest.raises(InsufficientCredits):
            deduct_credits(user=user, org_id=org.id, amount=mc(101), request_id="r-1")


@pytest.mark.django_db(transaction=True)
def test_racing_charges_never_pass_the_cap(make_funded_member):
    org, user = _capped_member(make_funded_member, cap=15)

    results = run_concurrently(
        lambda i: deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id=f"c-{i}"), 40
    )

    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, DailyCapReached) for r in refused)
    assert len(refused) == 25
    row = _row(org, user)
    assert (row.used_credits, row.cap_day_spent) == (mc(15), mc(15))
    assert find_all_drifts(org.id) == []


@pytest.mark.django_db(transaction=True)
def test_racing_holds_and_charges_never_pass_the_cap(make_funded_member):
    org, user = _capped_member(make_funded_member, cap=20)

    def work(i: int) -> object:
        if i % 2:
            return reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id=f"h-{i}")
        return deduct_credits(user=user, org_id=org.id, amount=mc(2), request_id=f"c-{i}")

    results = run_concurrently(work, 30)

    admitted = [r for r in results if not isinstance(r, Exception)]
    assert all(isinstance(r, DailyCapReached) for r in results if isinstance(r, Exception))
    assert len(admitted) == 10
    row = _row(org, user)
    assert row.used_credits + row.reserved_credits == row.cap_day_spent == mc(20)
    assert find_all_drifts(org.id) == []


# --- API ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_sets_shows_and_removes_a_daily_cap(api_client, team):
    api_client.force_login(team.admin)
    url = reverse("org-billing-allocation-detail", args=[team.org.id, team.member.username])

    capped = api_client.patch(url, {"credits": 100, "daily_cap_credits": 2.5}, format="json")
    deduct_credits(user=team.member, org_id=team.org.id, amount=mc(2), request_id="r-1")
    listed = api_client.get(reverse("org-billing-allocations", args=[team.org.id])).json()
    kept = api_client.patch(url, {"credits": 100}, format="json")
    removed = api_client.patch(url, {"credits": 100, "daily_cap_credits": None}, format="json")

    assert capped.json()["allocation"]["daily_cap_credits"] == 2.5
    mine = next(row for row in listed["results"] if row["user_id"] == team.member.username)
    assert (mine["daily_cap_credits"], mine["spent_today_credits"]) == (2.5, 2.0)
    assert kept.json()["allocation"]["daily_cap_credits"] == 2.5
    assert removed.json()["allocation"]["daily_cap_credits"] is None


@pytest.mark.django_db
def test_a_charge_beyond_the_cap_answers_402_daily_cap_reached(api_client, team):
    api_client.force_login(team.admin)
    api_client.post(
        reverse("org-billing-credits-allocate", args=[team.org.id]),
        {"user_id": team.member.username, "credits": 1, "daily_cap_credits": 1},
        format="json",
    )
    deduct_credits(user=team.member, org_id=team.org.id, amount=mc(1), request_id="r-1")

    with pytest.raises(DailyCapReached) as refusal:
        deduct_credits(user=team.member, org_id=team.org.id, amount=mc("0.001"), request_id="r-2")

    assert (refusal.value.status_code, refusal.value.code) == (402, "daily_cap_reached")
    assert_error(
        api_client.patch(
            reverse("org-billing-allocation-detail", args=[team.org.id, team.member.username]),
            {"credits": 101, "daily_cap_credits": -1},
            format="json",
        ),
        400,
        "validation_error",
    )
