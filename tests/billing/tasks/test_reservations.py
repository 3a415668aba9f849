"""Stale holds are released by the periodic task (frozen clock), through charging.expire_reservations."""

from datetime import timedelta

import pytest
import time_machine

from billing.models import CreditReservation, IndividualCreditBalance, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import add_individual_credits, reserve_credits, settle_reservation
from billing.tasks import expire_reservations
from tests.billing.tasks.conftest import at
from tests.helpers import mc

pytestmark = pytest.mark.django_db

NOW = at("2026-04-01T09:00:00+00:00")


def test_holds_past_their_ttl_are_released_and_live_ones_are_kept(make_funded_member, settings):
    settings.CREDIT_RESERVATION_TTL_SECONDS = 900
    with time_machine.travel(NOW, tick=False):
        org, user, allocation = make_funded_member(pool=100, allocation=50)
        stale = reserve_credits(user=user, org_id=org.id, amount=mc(10), request_id="crashed")
        add_individual_credits(user=user, amount=mc(20), actor_label="test")
        stale_own = reserve_credits(user=user, org_id=None, amount=mc(5), request_id="crashed-own")
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        reserve_credits(user=user, org_id=org.id, amount=mc(7), request_id="running")
        settled = reserve_credits(user=user, org_id=org.id, amount=mc(3), request_id="done")
        settle_reservation(reservation_id=settled.reservation_id, actual_amount=mc(2))

    # 15 minutes after NOW the first holds are at their expiry, not past it.
    with time_machine.travel(NOW + timedelta(minutes=15), tick=False):
        assert expire_reservations.delay().get() == {"expired": 0}
    with time_machine.travel(NOW + timedelta(minutes=15, seconds=1), tick=False):
        assert expire_reservations.delay().get() == {"expired": 2}
        assert expire_reservations.delay().get() == {"expired": 0}

    status = dict(CreditReservation.objects.values_list("request_id", "status"))
    assert status == {"crashed": "expired", "crashed-own": "expired", "running": "held", "done": "settled"}
    allocation.refresh_from_db()
    assert allocation.reserved_credits == mc(7)
    assert allocation.used_credits == mc(2)
    assert IndividualCreditBalance.objects.get(user=user).reserved_credits == 0
    assert {stale.reservation_id, stale_own.reservation_id} == set(
        CreditReservation.objects.filter(status="expired").values_list("pk", flat=True)
    )
    assert find_all_drifts() == []


def test_many_stale_holds_are_released_in_batches(make_funded_member, settings, monkeypatch):
    import billing.tasks

    monkeypatch.setattr(billing.tasks, "RESERVATION_BATCH", 3)
    settings.CREDIT_RESERVATION_TTL_SECONDS = 60
    with time_machine.travel(NOW, tick=False):
        org, user, _ = make_funded_member(pool=100, allocation=50)
        for i in range(7):
            reserve_credits(user=user, org_id=org.id, amount=mc(1), request_id=f"h{i}")
    with time_machine.travel(NOW + timedelta(minutes=2), tick=False):
        assert expire_reservations.delay().get() == {"expired": 7}
    assert UserCreditAllocation.objects.get(user=user).reserved_credits == 0
