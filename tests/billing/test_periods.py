"""Recurring allocations (issue 14 §2): each UTC period boundary resets or refills an allocation
exactly once, catches up after missed runs, never applies early, never frees a hold in flight,
never goes negative, and never races a charge into a lost or double count. Every test ends with
``reconcile_credits`` clean."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.ledger.periods import next_boundary, period_start
from billing.models import AllocationPeriod, AuditEvent, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    PeriodChange,
    add_credits_to_pool,
    adjust_allocation,
    allocate_credits_to_user,
    create_department,
    deduct_credits,
    reserve_credits,
    settle_reservation,
)
from billing.services.periods import PeriodSkipped, apply_allocation_periods, apply_allocation_periods_for
from billing.tasks import apply_allocation_periods as apply_task
from organizations.models import Organization
from organizations.services import add_member
from tests.concurrency import run_concurrently
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, pool_of, snapshot_balances

JAN_15 = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
MONTHLY_RESET = PeriodChange(period="monthly", mode="reset")


def recurring_member(*, pool=1000, amount=100, change=MONTHLY_RESET, at=JAN_15, department=None):
    """An org with ``pool`` credits and a member whose allocation of ``amount`` recurs, made at ``at``."""
    org = OrganizationFactory()
    add_credits_to_pool(org_id=org.id, amount=mc(pool), actor_label="test")
    user = UserFactory()
    add_member(org_id=org.id, user=user, actor_label="test")
    department_id = None
    if department is not None:
        department_id = create_department(org_id=org.id, name="Eng", budget=mc(department)).pk
    with time_machine.travel(at, tick=False):
        allocation = allocate_credits_to_user(
            org_id=org.id, user=user, amount=mc(amount), period=change, department_id=department_id
        ).allocation
    return org, user, allocation


def row(allocation) -> UserCreditAllocation:
    return UserCreditAllocation.objects.get(pk=allocation.pk)


def balances(allocation) -> tuple[int, int, int]:
    fresh = row(allocation)
    return fresh.allocated_credits, fresh.used_credits, fresh.reserved_credits


# --- the clock ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "moment", "start", "end"),
    [
        ("daily", "2026-03-10T23:59:59", "2026-03-10", "2026-03-11"),
        ("weekly", "2026-03-08T12:00:00", "2026-03-02", "2026-03-09"),  # a Sunday: the week began Monday
        ("weekly", "2026-03-09T00:00:00", "2026-03-09", "2026-03-16"),  # Monday 00:00 opens a week
        ("monthly", "2026-12-31T23:00:00", "2026-12-01", "2027-01-01"),
        ("monthly", "2028-02-10T00:00:00", "2028-02-01", "2028-03-01"),  # a leap February
    ],
)
def test_periods_follow_utc_calendar_boundaries(period, moment, start, end):
    moment_at = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    begins = period_start(moment_at, period)
    assert begins == datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert next_boundary(begins, period) == datetime.fromisoformat(end).replace(tzinfo=UTC)


def test_period_start_reads_other_time_zones_as_utc():
    from zoneinfo import ZoneInfo

    # 00:30 on March 1st in Berlin (UTC+1) is still February in UTC.
    moment = datetime(2026, 3, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert period_start(moment, "monthly") == datetime(2026, 2, 1, tzinfo=UTC)


# --- reset and refill -----------------------------------------------------------------------


@pytest.mark.django_db
class TestResetAndRefill:
    def test_a_reset_returns_the_unspent_credits_and_grants_the_amount_afresh(self):
        org, user, allocation = recurring_member()
        with time_machine.travel(JAN_15, tick=False):
            deduct_credits(user=user, org_id=org.id, amount=mc(30), request_id="jan")

        apply_allocation_periods(now=FEB_1)

        # 70 unspent went back, 100 came fresh: net 30 more drawn; used stays lifetime
        assert balances(allocation) == (mc(130), mc(30), 0)
        assert row(allocation).free_credits == mc(100)
        period = AllocationPeriod.objects.get(allocation=allocation)
        assert (period.period_start, period.unspent, period.period_used) == (FEB_1, mc(70), mc(30))
        assert (period.drawn, period.returned, period.shortfall) == (mc(30), 0, 0)
        pool = pool_of(org)
        assert (pool.total_credits, pool.allocated_credits, pool.used_credits) == (mc(1000), mc(130), mc(30))
        assert find_all_drifts() == []

    def test_a_reset_hands_back_credits_beyond_the_amount(self):
        org, user, allocation = recurring_member()
        with time_machine.travel(JAN_15, tick=False):
            adjust_allocation(org_id=org.id, user=user, allocated=mc(400))  # a one-off top-up

        apply_allocation_periods(now=FEB_1)

        assert row(allocation).free_credits == mc(100)
        assert AllocationPeriod.objects.get(allocation=allocation).returned == mc(300)
        assert pool_of(org).allocated_credits == mc(100)
        assert find_all_drifts() == []

    def test_a_refill_carries_unspent_credits_over_up_to_the_cap(self):
        change = PeriodChange(period="monthly", mode="refill", rollover_cap=mc(50))
        org, user, allocation = recurring_member(change=change)
        with time_machine.travel(JAN_15, tick=False):
            deduct_credits(user=user, org_id=org.id, amount=mc(20), request_id="jan")

        apply_allocation_periods(now=FEB_1)
        # 80 unspent, 50 of them carried: 100 + 50 to spend in February
        assert row(allocation).free_credits == mc(150)
        first = AllocationPeriod.objects.get(allocation=allocation, period_start=FEB_1)
        assert (first.carried_over, first.drawn, first.returned) == (mc(50), mc(70), 0)

        apply_allocation_periods(now=datetime(2026, 3, 1, tzinfo=UTC))
        assert row(allocation).free_credits == mc(150)
        second = AllocationPeriod.objects.get(
            allocation=allocation, period_start=datetime(2026, 3, 1, tzinfo=UTC)
        )
        # nothing spent in February: 150 unspent, 50 of them carried on top of the 100: no movement
        assert (second.unspent, second.carried_over, second.drawn, second.returned) == (mc(150), mc(50), 0, 0)
        assert find_all_drifts() == []

    def test_a_refill_without_a_cap_tops_up_to_the_amount_only(self):
        org, user, allocation = recurring_member(change=PeriodChange(period="weekly", mode="refill"))
        with time_machine.travel(JAN_15, tick=False):
            deduct_credits(user=user, org_id=org.id, amount=mc(40), request_id="w")

        apply_allocation_periods(now=datetime(2026, 1, 19, tzinfo=UTC))  # the Monday after

        assert row(allocation).free_credits == mc(100)
        period = AllocationPeriod.objects.get(allocation=allocation)
        assert (period.carried_over, period.drawn) == (0, mc(40))

    def test_a_short_pool_gives_what_it_has_and_records_the_shortfall(self):
        org, user, allocation = recurring_member(pool=100)
        with time_machine.travel(JAN_15, tick=False):
            deduct_credits(user=user, org_id=org.id, amount=mc(60), request_id="jan")
        add_credits_to_pool(org_id=org.id, amount=mc(25), actor_label="test")

        outcome = apply_allocation_periods(now=FEB_1)

        # wanted 60 more, the pool had 25: never negative, the rest recorded
        assert row(allocation).free_credits == mc(65)
        assert pool_of(org).available_credits == 0
        assert outcome.shortfall == mc(35)
        period = AllocationPeriod.objects.get(allocation=allocation)
        assert (period.drawn, period.shortfall) == (mc(25), mc(35))
        event = AuditEvent.objects.get(action="allocation.period_applied")
        assert event.metadata["shortfall"] == mc(35)
        assert find_all_drifts() == []

    def test_a_department_allocation_draws_on_and_returns_to_the_department_budget(self):
        org, user, allocation = recurring_member(department=300, amount=100)
        department = row(allocation).department
        with time_machine.travel(JAN_15, tick=False):
            adjust_allocation(org_id=org.id, user=user, allocated=mc(250))
        pool_allocated = pool_of(org).allocated_credits

        apply_allocation_periods(now=FEB_1)

        department.refresh_from_db()
        assert row(allocation).free_credits == mc(100)
        assert department.allocated_credits == mc(100)  # 150 back to the department's budget
        assert pool_of(org).allocated_credits == pool_allocated  # the budget stays carved
        assert find_all_drifts() == []

    def test_every_boundary_is_audited(self):
        org, user, allocation = recurring_member()

        apply_allocation_periods(now=FEB_1 + timedelta(minutes=1))

        event = AuditEvent.objects.get(action="allocation.period_applied")
        assert event.org_id == org.id
        assert event.target_id == str(allocation.pk)
        assert event.actor_label == "task:apply_allocation_periods"
        assert event.metadata["period_start"] == FEB_1.isoformat()
        assert event.metadata["mode"] == "reset"
        assert event.metadata["user_id"] == user.username


# --- exactly once, never early, catch-up (LiteLLM #16057, #8364) ----------------------------


@pytest.mark.django_db
class TestExactlyOnce:
    def test_a_boundary_is_applied_once_however_often_the_task_runs(self):
        """LiteLLM #16057 (budget reset twice): a repeated or retried task resets once."""
        org, user, allocation = recurring_member()
        with time_machine.travel(FEB_1 + timedelta(seconds=5), tick=False):
            first = apply_task.delay().get()
            deduct_credits(user=user, org_id=org.id, amount=mc(10), request_id="after-reset")
            before = snapshot_balances()
            second = apply_task.delay().get()

        assert (first["allocations"], first["boundaries"]) == (1, 1)
        assert (second["allocations"], second["boundaries"]) == (0, 0)
        assert snapshot_balances() == before  # the spend after the reset was not reset away
        assert row(allocation).free_credits == mc(90)
        assert AllocationPeriod.objects.filter(allocation=allocation).count() == 1

    def test_the_ledger_refuses_a_second_row_for_the_same_boundary(self):
        """LiteLLM #16057: even a code path that skipped the lock could not apply a boundary twice."""
        _org, _user, allocation = recurring_member()
        apply_allocation_periods(now=FEB_1)
        period = AllocationPeriod.objects.get(allocation=allocation)
        period.pk = None
        with pytest.raises(IntegrityError), transaction.atomic():
            period.save()

    def test_a_boundary_is_never_applied_before_its_instant(self):
        """LiteLLM #8364: a key created mid-period resets at the next calendar boundary, not
        a period after its creation, and not a second early."""
        org, user, allocation = recurring_member(at=JAN_15)
        assert row(allocation).current_period_start == datetime(2026, 1, 1, tzinfo=UTC)
        assert row(allocation).next_period_start == FEB_1

        assert apply_allocation_periods(now=FEB_1 - timedelta(microseconds=1)).boundaries == 0
        assert apply_allocation_periods_for(
            allocation_id=allocation.pk, now=FEB_1 - timedelta(seconds=1)
        ) is (PeriodSkipped.NOT_DUE)
        assert apply_allocation_periods(now=FEB_1).boundaries == 1
        assert row(allocation).current_period_start == FEB_1
        assert row(allocation).next_period_start == datetime(2026, 3, 1, tzinfo=UTC)

    def test_missed_runs_are_caught_up_one_boundary_at_a_time(self):
        """LiteLLM #8364 (budget never resets): after three days without a run, one run applies
        the three missed daily boundaries in order, each once; the next run applies none."""
        change = PeriodChange(period="daily", mode="refill", rollover_cap=mc(30))
        org, user, allocation = recurring_member(change=change, at=datetime(2026, 3, 10, 9, tzinfo=UTC))
        with time_machine.travel(datetime(2026, 3, 10, 12, tzinfo=UTC), tick=False):
            deduct_credits(user=user, org_id=org.id, amount=mc(90), request_id="d1")

        outcome = apply_allocation_periods(now=datetime(2026, 3, 13, 8, tzinfo=UTC))

        starts = list(
            AllocationPeriod.objects.filter(allocation=allocation).values_list("period_start", "carried_over")
        )
        assert starts == [
            (datetime(2026, 3, 11, tzinfo=UTC), mc(10)),
            (datetime(2026, 3, 12, tzinfo=UTC), mc(30)),
            (datetime(2026, 3, 13, tzinfo=UTC), mc(30)),
        ]
        assert outcome.boundaries == 3
        assert row(allocation).free_credits == mc(130)
        assert row(allocation).next_period_start == datetime(2026, 3, 14, tzinfo=UTC)
        assert apply_allocation_periods(now=datetime(2026, 3, 13, 8, 1, tzinfo=UTC)).boundaries == 0
        assert AuditEvent.objects.filter(action="allocation.period_applied").count() == 3
        assert find_all_drifts() == []

    def test_an_inactive_organization_waits_and_catches_up_once_active(self):
        org, _user, allocation = recurring_member()
        Organization.objects.filter(pk=org.id).update(is_active=False)
        assert (
            apply_allocation_periods_for(allocation_id=allocation.pk, now=FEB_1) is PeriodSkipped.ORG_INACTIVE
        )
        Organization.objects.filter(pk=org.id).update(is_active=True)
        assert apply_allocation_periods(now=datetime(2026, 3, 2, tzinfo=UTC)).boundaries == 2

    def test_an_expired_allocation_is_left_to_the_expiry_pass(self):
        org, user, allocation = recurring_member()
        UserCreditAllocation.objects.filter(pk=allocation.pk).update(expires_at=JAN_15 + timedelta(days=1))
        assert apply_allocation_periods_for(allocation_id=allocation.pk, now=FEB_1) is PeriodSkipped.EXPIRED
        assert not AllocationPeriod.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_applying_the_same_boundary_apply_it_once():
    """LiteLLM #16057 (budget reset twice): four workers race on the same due boundary on real
    connections; one applies it, the others find nothing due; one row, one audit event."""
    org, user, allocation = recurring_member()
    with time_machine.travel(JAN_15, tick=False):
        deduct_credits(user=user, org_id=org.id, amount=mc(30), request_id="jan")

    results = run_concurrently(lambda _i: apply_allocation_periods(now=FEB_1 + timedelta(seconds=1)), 4)

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(r.boundaries for r in results) == [0, 0, 0, 1]
    assert AllocationPeriod.objects.filter(allocation=allocation).count() == 1
    assert AuditEvent.objects.filter(action="allocation.period_applied").count() == 1
    assert balances(allocation) == (mc(130), mc(30), 0)
    assert pool_of(org).allocated_credits == mc(130)
    assert find_all_drifts() == []


# --- holds and racing charges (LiteLLM #34492) ----------------------------------------------


@pytest.mark.django_db
def test_a_reset_never_frees_a_hold_in_flight_and_its_charge_lands_once_in_the_new_period(settings):
    settings.CREDIT_RESERVATION_TTL_SECONDS = 3600
    org, user, allocation = recurring_member()
    with time_machine.travel(FEB_1 - timedelta(minutes=1), tick=False):
        deduct_credits(user=user, org_id=org.id, amount=mc(20), request_id="before")
        held = reserve_credits(user=user, org_id=org.id, amount=mc(50), request_id="in-flight")

    apply_allocation_periods(now=FEB_1)

    # the hold stays covered and counts in the new period's 100
    assert balances(allocation) == (mc(20) + mc(100), mc(20), mc(50))
    assert row(allocation).free_credits == mc(50)
    with time_machine.travel(FEB_1 + timedelta(seconds=30), tick=False):
        settle_reservation(reservation_id=held.reservation_id, actual_amount=mc(45))
    fresh = row(allocation)
    assert (fresh.used_credits, fresh.reserved_credits, fresh.free_credits) == (mc(65), 0, mc(55))
    assert fresh.used_credits - fresh.period_start_used_credits == mc(45)  # in February's usage
    assert pool_of(org).used_credits == mc(65)
    assert find_all_drifts() == []


@pytest.mark.django_db
def test_holds_above_the_amount_keep_the_allocation_at_used_plus_held():
    org, user, allocation = recurring_member(amount=100)
    with time_machine.travel(JAN_15, tick=False):
        adjust_allocation(org_id=org.id, user=user, allocated=mc(300))
        reserve_credits(user=user, org_id=org.id, amount=mc(250), request_id="big")

    apply_allocation_periods(now=FEB_1)

    assert balances(allocation) == (mc(250), 0, mc(250))
    assert row(allocation).free_credits == 0
    assert AllocationPeriod.objects.get(allocation=allocation).returned == mc(50)
    assert find_all_drifts() == []


@pytest.mark.django_db(transaction=True)
def test_a_reset_racing_charges_counts_every_charge_exactly_once():
    """LiteLLM #34492 (reset races spend): eight threads charge while a ninth applies the
    boundary; every charge lands once, either before the boundary (old period) or after it (new
    period), the balances are exact and reconciliation is clean."""
    org, user, allocation = recurring_member(pool=10_000, amount=100)
    charges_per_thread, threads = 5, 8

    def work(i: int):
        if i == threads:
            return apply_allocation_periods(now=FEB_1 + timedelta(seconds=1))
        done = 0
        for n in range(charges_per_thread):
            deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id=f"t{i}-{n}")
            done += 1
        return done

    results = run_concurrently(work, threads + 1)

    assert not [r for r in results if isinstance(r, BaseException)], results
    charged = mc(sum(results[:threads]))
    period = AllocationPeriod.objects.get(allocation=allocation)
    fresh = row(allocation)
    assert fresh.used_credits == charged == pool_of(org).used_credits
    # the boundary saw exactly the charges before it, and set the new period's 100 on top of them
    assert period.allocated_after == period.used + mc(100)
    assert fresh.allocated_credits == period.allocated_after
    assert fresh.free_credits == mc(100) - (charged - period.used)
    assert pool_of(org).allocated_credits == fresh.allocated_credits
    assert find_all_drifts() == []


# --- admin changes land in the current period ------------------------------------------------


@pytest.mark.django_db
class TestSettingsChanges:
    def test_an_adjust_after_a_missed_boundary_applies_the_boundary_first(self):
        org, user, allocation = recurring_member()
        with time_machine.travel(JAN_15, tick=False):
            deduct_credits(user=user, org_id=org.id, amount=mc(30), request_id="jan")
        with time_machine.travel(FEB_1 + timedelta(seconds=20), tick=False):
            adjust_allocation(org_id=org.id, user=user, allocated=mc(200))

        # February's reset happened first (130), then the admin's 200 — not reset away afterwards
        assert AllocationPeriod.objects.get(allocation=allocation).allocated_after == mc(130)
        assert balances(allocation) == (mc(200), mc(30), 0)
        assert apply_allocation_periods(now=FEB_1 + timedelta(minutes=1)).boundaries == 0
        assert find_all_drifts() == []

    def test_turning_recurrence_on_off_and_switching_the_period(self):
        org, user, allocation = recurring_member(change=PeriodChange())
        assert row(allocation).period == ""
        with time_machine.travel(datetime(2026, 3, 11, 15, tzinfo=UTC), tick=False):
            deduct_credits(user=user, org_id=org.id, amount=mc(10), request_id="x")
            adjust_allocation(
                org_id=org.id, user=user, allocated=mc(100), period=PeriodChange(period="weekly")
            )
            fresh = row(allocation)
            assert (fresh.period, fresh.period_mode, fresh.period_amount_credits) == (
                "weekly",
                "reset",
                mc(90),
            )
            assert fresh.current_period_start == datetime(2026, 3, 9, tzinfo=UTC)
            adjust_allocation(
                org_id=org.id, user=user, allocated=mc(100), period=PeriodChange(period="daily")
            )
            assert row(allocation).next_period_start == datetime(2026, 3, 12, tzinfo=UTC)
            adjust_allocation(org_id=org.id, user=user, allocated=mc(100), period=PeriodChange(period=None))
        fresh = row(allocation)
        assert (fresh.period, fresh.next_period_start, fresh.period_amount_credits) == ("", None, None)
        assert apply_allocation_periods(now=timezone.now() + timedelta(days=400)).boundaries == 0
