"""Allocations past expires_at are expired (unused credits back to the pool), with a frozen clock."""

import logging
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from billing.errors import AllocationExpired
from billing.models import AuditEvent, CreditReservation, OrganizationCreditPool
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_credits_to_pool,
    allocate_credits_to_user,
    deduct_credits,
    expiry,
    reserve_credits,
)
from billing.services.expiry import Skipped, expire_allocation
from billing.tasks import expire_allocations, expire_reservations
from organizations.services import add_member
from orgbilling.celery import app as celery_app
from tests.billing.tasks.conftest import at
from tests.concurrency import in_open_transaction, run_concurrently
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, snapshot_balances

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


@pytest.mark.django_db(transaction=True)
def test_a_task_that_meets_a_lock_timeout_is_retried_until_it_succeeds(caplog):
    # given: an expired allocation whose pool another transaction keeps locked for a moment
    with time_machine.travel(START, tick=False):
        org, _user, allocation = member_with_expiring_allocation()

    def lock_pool() -> OrganizationCreditPool:
        return OrganizationCreditPool.objects.select_for_update().get(org_id=org.id)

    with in_open_transaction(lock_pool, release_after=1.0, timeout=10):
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '500ms'")
        celery_app.conf.task_eager_propagates = False
        try:
            # when: the task runs while the lock is held (applied in-process, where Celery runs each
            # retry at once instead of after its backoff; without propagation Celery handles them)
            with (
                time_machine.travel(START + timedelta(days=2)),
                caplog.at_level(logging.INFO, logger="celery.app.trace"),
            ):
                outcome = expire_allocations.apply(throw=False)
        finally:
            celery_app.conf.task_eager_propagates = True
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")

    # then: the lock timeout was retried, and the retry expired the allocation
    assert any("retry" in r.getMessage().lower() and "lock" in r.getMessage().lower() for r in caplog.records)
    assert outcome.successful(), outcome.traceback
    assert outcome.result["expired"] == 1
    allocation.refresh_from_db()
    assert not allocation.is_active


@pytest.mark.django_db(transaction=True)
def test_concurrent_expiry_passes_return_the_credits_once():
    with time_machine.travel(START, tick=False):
        members = [member_with_expiring_allocation() for _ in range(3)]
    with time_machine.travel(START + timedelta(days=1), tick=False):
        results = run_concurrently(lambda _i: expiry.expire_allocations(), 6)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(len(r.expired) for r in results) == 3
    assert sum(r.returned_to_pool for r in results) == mc(300)
    assert AuditEvent.objects.filter(action="allocation.expired").count() == 3
    for org, _user, _allocation in members:
        assert OrganizationCreditPool.objects.get(org=org).allocated_credits == 0
    assert find_all_drifts() == []
