"""Allocations past expires_at are expired (unused credits back to the pool), with a frozen clock."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from billing.errors import AllocationExpired
from billing.models import AuditEvent, CreditReservation, OrganizationCreditPool
from billing.selectors.reconciliation import find_all_drifts
from billing.services import add_credits_to_pool, allocate_credits_to_user, deduct_credits, reserve_credits
from billing.services.expiry import Skipped, expire_allocation
from billing.tasks import expire_allocations, expire_reservations
from organizations.services import add_member
from tests.billing.tasks.conftest import at
from tests.conftest import mc, snapshot_balances
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

START = at("2026-03-10T12:00:00+00:00")


def member_with_expiring_allocation(*, pool=1000, allocation=100, days=1):
    """An org with ``pool`` credits and a member allocated ``allocation`` of them, expiring
    ``days`` after START (call with the clock at START)."""
    org = OrganizationFactory()
    add_credits_to_pool(org_id=org.id, amount=mc(pool), actor_label="test")
    user = UserFactory()
    add_member(org_id=org.id, user=user, actor_label="test")
    change = allocate_credits_to_user(
        org_id=org.id,
        user=user,
        amount=mc(allocation),
        expires_at=START + timedelta(days=days),
        actor_label="test",
    )
    return org, user, change.allocation


def test_expired_allocation_returns_its_unused_credits_to_the_pool():
    # given: 100 credits allocated, 30 used, expiring tomorrow
    with time_machine.travel(START, tick=False):
        org, user, allocation = member_with_expiring_allocation()
        deduct_credits(user=user, org_id=org.id, amount=mc(30), request_id="r1", service_name="m")

    # when: the task runs the day after the expiry
    with time_machine.travel(START + timedelta(days=1, seconds=1), tick=False):
        result = expire_allocations.delay().get()

    # then
    assert result == {"expired": 1, "returned_to_pool": mc(70), "skipped_with_holds": []}
    allocation.refresh_from_db()
    assert (allocation.is_active, allocation.allocated_credits, allocation.used_credits) == (
        False,
        mc(30),
        mc(30),
    )
    assert allocation.revoked_at == START + timedelta(days=1, seconds=1)
    pool = OrganizationCreditPool.objects.get(org=org)
    assert (pool.total_credits, pool.allocated_credits, pool.used_credits) == (mc(1000), mc(30), mc(30))
    event = AuditEvent.objects.get(action="allocation.expired")
    assert event.org_id == org.id
    assert event.target_id == str(allocation.pk)
    assert event.actor_label == "task:expire_allocations"
    assert event.metadata["returned_to_pool"] == mc(70)
    assert event.metadata["user_id"] == user.username
    assert find_all_drifts() == []


def test_an_allocation_is_not_expired_before_its_time_and_a_second_run_changes_nothing():
    with time_machine.travel(START, tick=False):
        org, _user, allocation = member_with_expiring_allocation()
    with time_machine.travel(START + timedelta(hours=23, minutes=59), tick=False):
        assert expire_allocations.delay().get()["expired"] == 0
    allocation.refresh_from_db()
    assert allocation.is_active

    with time_machine.travel(START + timedelta(days=1), tick=False):
        assert expire_allocations.delay().get()["expired"] == 1
        before = snapshot_balances()
        assert expire_allocations.delay().get() == {
            "expired": 0,
            "returned_to_pool": 0,
            "skipped_with_holds": [],
        }
        assert snapshot_balances() == before
    assert AuditEvent.objects.filter(action="allocation.expired").count() == 1


def test_an_allocation_with_credits_on_hold_waits_until_the_hold_is_gone(settings):
    settings.CREDIT_RESERVATION_TTL_SECONDS = 600
    with time_machine.travel(START + timedelta(hours=23, minutes=58), tick=False):
        org, user, allocation = member_with_expiring_allocation()
        hold = reserve_credits(user=user, org_id=org.id, amount=mc(10), request_id="in-flight")

    # Past the allocation's expiry, the hold still lives: the allocation is left alone.
    with time_machine.travel(START + timedelta(days=1, minutes=1), tick=False):
        assert expire_allocations.delay().get() == {
            "expired": 0,
            "returned_to_pool": 0,
            "skipped_with_holds": [allocation.pk],
        }
        assert expire_allocation(allocation_id=allocation.pk) is Skipped.HAS_HOLDS
    allocation.refresh_from_db()
    assert allocation.is_active and allocation.reserved_credits == mc(10)

    # Once the hold has expired and been released, the allocation expires in full.
    with time_machine.travel(START + timedelta(days=1, minutes=10), tick=False):
        assert expire_reservations.delay().get() == {"expired": 1}
        assert expire_allocations.delay().get()["returned_to_pool"] == mc(100)
    assert CreditReservation.objects.get(pk=hold.reservation_id).status == "expired"
    assert find_all_drifts() == []


def test_an_expired_allocation_no_longer_pays_and_the_member_can_be_given_a_new_one():
    with time_machine.travel(START, tick=False):
        org, user, allocation = member_with_expiring_allocation()
    with time_machine.travel(START + timedelta(days=2), tick=False):
        with pytest.raises(AllocationExpired):
            deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="late")
        expire_allocations.delay().get()
        fresh = allocate_credits_to_user(org_id=org.id, user=user, amount=mc(50), actor_label="test")
        assert fresh.created and fresh.allocation.pk != allocation.pk
        deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="fresh")
    assert find_all_drifts() == []


def test_expire_allocations_command_dry_run_lists_and_changes_nothing():
    with time_machine.travel(START, tick=False):
        _org, user, allocation = member_with_expiring_allocation(allocation=100)
    with time_machine.travel(START + timedelta(days=3), tick=False):
        before = snapshot_balances()
        out = StringIO()
        call_command("expire_allocations", "--dry-run", stdout=out, stderr=StringIO())
        assert snapshot_balances() == before
        assert f"would expire allocation #{allocation.pk} {user.username}" in out.getvalue()
        assert "100.000 credits back to the pool" in out.getvalue()
        assert "1 allocation(s) past expiry; nothing changed" in out.getvalue()

        out = StringIO()
        call_command("expire_allocations", "--no-progress", stdout=out, stderr=StringIO())
    assert "Expired 1 allocation(s); 100.000 credits returned to pools." in out.getvalue()
    allocation.refresh_from_db()
    assert not allocation.is_active
    assert AuditEvent.objects.get(action="allocation.expired").actor_label == "command:expire_allocations"
