"""A hypothesis state machine drives the ledger services in random order against a model of
what every balance should be, and checks every invariant after each step. Departments take part:
their budgets are carved from the pool, their allocations from the budgets; so do credit
requests, whose approvals raise allocations, and recurring allocations, whose period boundaries
are applied with their clock advanced. Grants take part: credits added with an expiry, and expiry
passes that may only take unallocated credits."""

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from billing.models import (
    CreditRequest,
    Department,
    IndividualCreditBalance,
    OrganizationCreditPool,
    UserCreditAllocation,
)
from billing.permissions import Deciders
from billing.selectors.grants import org_grants
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    PeriodChange,
    add_credits_to_pool,
    add_individual_credits,
    adjust_allocation,
    allocate_credits_to_user,
    create_department,
    deduct_credits,
    delete_department,
    release_reservation,
    reserve_credits,
    revoke_allocation,
    settle_reservation,
    transfer_credits,
    update_department,
)
from billing.services.credit_requests import (
    approve_credit_request,
    cancel_credit_request,
    decline_credit_request,
    request_credits,
)
from billing.services.grant_expiry import expire_credit_grants
from billing.services.periods import apply_allocation_periods
from organizations.services import add_member, create_organization
from orgbilling.errors import ApplicationError
from tests.factories import UserFactory

RUN = itertools.count()
amounts = st.integers(min_value=1, max_value=5_000)
ORGS, USERS, DEPTS = 2, 3, 2


@dataclass
class Alloc:
    allocated: int = 0
    used: int = 0
    reserved: int = 0
    dept: int | None = None  # index of its department, None: carved from the pool


@dataclass
class Dept:
    pk: int
    budget: int
    allocated: int = 0


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        run = next(RUN)
        self.users = [UserFactory(username=f"sm{run}-u{i}") for i in range(USERS)]
        self.orgs = [f"sm{run}-org{i}" for i in range(ORGS)]
        for org_id in self.orgs:
            create_organization(org_id=org_id, org_name=org_id, created_by=None)
            for user in self.users:
                add_member(org_id=org_id, user=user)
        self.pools = {org: [0, 0, 0] for org in self.orgs}  # total, allocated, used
        self.allocs: dict[tuple[str, int], Alloc] = {}
        self.depts: dict[tuple[str, int], Dept] = {}  # live departments by (org, index)
        self.individual = {u.pk: [0, 0, 0] for u in self.users}  # total, used, reserved
        self.holds: dict[int, tuple[str | None, int, int]] = {}  # reservation id → org, user idx, amount
        self.charges: dict[tuple[str | None, int, str], int] = {}
        self.request_ids = itertools.count()
        # recurring allocations: (org, user idx) → (its Alloc, next boundary, amount, refill, cap)
        self.recurring: dict[tuple[str, int], tuple[Alloc, datetime, int, bool, int | None]] = {}
        self.period_clock = datetime(2040, 1, 1, 1, tzinfo=UTC)

    # -- helpers --------------------------------------------------------------------------------
    def expect(self, ok: bool, call) -> object | None:  # type: ignore[no-untyped-def]
        """Run ``call``; it must succeed exactly when the model says it should."""
        try:
            result = call()
        except ApplicationError as err:
            assert not ok, f"model expected success, service refused: {err.code} {err.details}"
            return None
        assert ok, "model expected a refusal, service succeeded"
        return result

    def free(self, org: str, u: int) -> int:
        a = self.allocs.get((org, u))
        return -1 if a is None else a.allocated - a.used - a.reserved

    def room(self, org_id: str, dept: int | None) -> int:
        """What can still be carved: the department's unallocated budget, or the pool's."""
        if dept is None:
            pool = self.pools[org_id]
            return pool[0] - pool[1]
        d = self.depts.get((org_id, dept))
        return -1 if d is None else d.budget - d.allocated

    def carve(self, org_id: str, dept: int | None, delta: int) -> None:
        if dept is None:
            self.pools[org_id][1] += delta
        else:
            self.depts[(org_id, dept)].allocated += delta

    # -- rules -------------------------------------------------------------------------------
    @rule(org=st.integers(0, ORGS - 1), amount=amounts)
    def add_credits(self, org: int, amount: int) -> None:
        org_id = self.orgs[org]
        self.expect(True, lambda: add_credits_to_pool(org_id=org_id, amount=amount))
        self.pools[org_id][0] += amount

    @rule(org=st.integers(0, ORGS - 1), u=st.integers(0, USERS - 1), amount=amounts)
    def allocate(self, org: int, u: int, amount: int) -> None:
        org_id = self.orgs[org]
        existing = self.allocs.get((org_id, u))
        ok = amount <= self.room(org_id, None) and (existing is None or existing.dept is None)
        if self.expect(
            ok, lambda: allocate_credits_to_user(org_id=org_id, user=self.users[u], amount=amount)
        ):
            self.allocs.setdefault((org_id, u), Alloc()).allocated += amount
            self.carve(org_id, None, amount)

    @rule(org=st.integers(0, ORGS - 1), d=st.integers(0, DEPTS - 1), budget=st.integers(0, 8_000))
    def create_dept(self, org: int, d: int, budget: int) -> None:
        org_id = self.orgs[org]
        ok = (org_id, d) not in self.depts and budget <= self.room(org_id, None)
        call = lambda: create_department(org_id=org_id, name=f"D{d}", budget=budget)  # noqa: E731
        department = self.expect(ok, call)
        if department is not None:
            self.depts[(org_id, d)] = Dept(pk=department.pk, budget=budget)  # type: ignore[attr-defined]
            self.pools[org_id][1] += budget

    @rule(org=st.integers(0, ORGS - 1), d=st.integers(0, DEPTS - 1), budget=st.integers(0, 8_000))
    def resize_dept(self, org: int, d: int, budget: int) -> None:
        org_id = self.orgs[org]
        dept = self.depts.get((org_id, d))
        if dept is None:
            return
        ok = budget >= dept.allocated and budget - dept.budget <= self.room(org_id, None)
        if self.expect(ok, lambda: update_department(org_id=org_id, department_id=dept.pk, budget=budget)):
            self.pools[org_id][1] += budget - dept.budget
            dept.budget = budget

    @rule(org=st.integers(0, ORGS - 1), d=st.integers(0, DEPTS - 1))
    def delete_dept(self, org: int, d: int) -> None:
        org_id = self.orgs[org]
        dept = self.depts.get((org_id, d))
        if dept is None:
            return
        ok = not any(k[0] == org_id and a.dept == d for k, a in self.allocs.items())
        if self.expect(ok, lambda: delete_department(org_id=org_id, department_id=dept.pk)):
            # The deleted row keeps budget = allocated (what its revoked allocations used).
            self.pools[org_id][1] -= dept.budget - dept.allocated
            del self.depts[(org_id, d)]

    @rule(
        org=st.integers(0, ORGS - 1), d=st.integers(0, DEPTS - 1), u=st.integers(0, USERS - 1), amount=amounts
    )
    def allocate_in_dept(self, org: int, d: int, u: int, amount: int) -> None:
        org_id = self.orgs[org]
        dept = self.depts.get((org_id, d))
        if dept is None:
            return
        existing = self.allocs.get((org_id, u))
        ok = amount <= self.room(org_id, d) and (existing is None or existing.dept == d)
        call = lambda: allocate_credits_to_user(  # noqa: E731
            org_id=org_id, user=self.users[u], amount=amount, department_id=dept.pk
        )
        if self.expect(ok, call):
            self.allocs.setdefault((org_id, u), Alloc(dept=d)).allocated += amount
            self.carve(org_id, d, amount)

    @rule(org=st.integers(0, ORGS - 1), u=st.integers(0, USERS - 1), new_total=st.integers(0, 8_000))
    def adjust(self, org: int, u: int, new_total: int) -> None:
        org_id = self.orgs[org]
        a = self.allocs.get((org_id, u))
        ok = (
            a is not None
            and new_total >= a.used + a.reserved
            and new_total - a.allocated <= self.room(org_id, a.dept)
        )
        if self.expect(ok, lambda: adjust_allocation(org_id=org_id, user=self.users[u], allocated=new_total)):
            assert a is not None
            self.carve(org_id, a.dept, new_total - a.allocated)
            a.allocated = new_total

    @rule(org=st.integers(0, ORGS - 1), u=st.integers(0, USERS - 1))
    def revoke(self, org: int, u: int) -> None:
        org_id = self.orgs[org]
        a = self.allocs.get((org_id, u))
        ok = a is not None and a.reserved == 0
        if self.expect(ok, lambda: revoke_allocation(org_id=org_id, user=self.users[u])):
            assert a is not None
            self.carve(org_id, a.dept, -(a.allocated - a.used))
            del self.allocs[(org_id, u)]  # the revoked row keeps allocated == used: no free credits

    @rule(
        org=st.integers(0, ORGS - 1), a=st.integers(0, USERS - 1), b=st.integers(0, USERS - 1), amount=amounts
    )
    def transfer(self, org: int, a: int, b: int, amount: int) -> None:
        org_id = self.orgs[org]
        source, target = self.allocs.get((org_id, a)), self.allocs.get((org_id, b))
        ok = (
            a != b
            and source is not None
            and amount <= self.free(org_id, a)
            and (target is None or target.dept == source.dept)
        )
        call = lambda: transfer_credits(  # noqa: E731
            org_id=org_id, from_user=self.users[a], to_user=self.users[b], amount=amount
        )
        if self.expect(ok, call):
            assert source is not None
            source.allocated -= amount
            self.allocs.setdefault((org_id, b), Alloc(dept=source.dept)).allocated += amount

    @rule(org=st.integers(-1, ORGS - 1), u=st.integers(0, USERS - 1), amount=amounts, replay=st.booleans())
    def deduct(self, org: int, u: int, amount: int, replay: bool) -> None:
        org_id = self.orgs[org] if org >= 0 else None
        previous = [k for k in self.charges if k[0] == org_id and k[1] == u]
        if replay and previous:
            key = previous[0]
            result = self.expect(
                True,
                lambda: deduct_credits(
                    user=self.users[u], org_id=org_id, amount=self.charges[key], request_id=key[2]
                ),
            )
            assert result is not None and result.replayed  # type: ignore[attr-defined]
            return
        request_id = f"req-{next(self.request_ids)}"
        if org_id is None:
            total, used, reserved = self.individual[self.users[u].pk]
            ok = amount <= total - used - reserved
        else:
            ok = (org_id, u) in self.allocs and amount <= self.free(org_id, u)
        call = lambda: deduct_credits(  # noqa: E731
            user=self.users[u], org_id=org_id, amount=amount, request_id=request_id
        )
        if self.expect(ok, call):
            self.charges[(org_id, u, request_id)] = amount
            if org_id is None:
                self.individual[self.users[u].pk][1] += amount
            else:
                self.allocs[(org_id, u)].used += amount
                self.pools[org_id][2] += amount

    @rule(u=st.integers(0, USERS - 1), amount=amounts)
    def add_individual(self, u: int, amount: int) -> None:
        self.expect(True, lambda: add_individual_credits(user=self.users[u], amount=amount))
        self.individual[self.users[u].pk][0] += amount

    @rule(org=st.integers(0, ORGS - 1), u=st.integers(0, USERS - 1), amount=amounts)
    def reserve(self, org: int, u: int, amount: int) -> None:
        org_id = self.orgs[org]
        ok = (org_id, u) in self.allocs and amount <= self.free(org_id, u)
        request_id = f"hold-{next(self.request_ids)}"
        call = lambda: reserve_credits(  # noqa: E731
            user=self.users[u], org_id=org_id, amount=amount, request_id=request_id
        )
        result = self.expect(ok, call)
        if result is not None:
            self.allocs[(org_id, u)].reserved += amount
            self.holds[result.reservation_id] = (org_id, u, amount)  # type: ignore[attr-defined]

    @rule(data=st.data(), settle=st.booleans(), actual=st.integers(0, 6_000))
    def finish_hold(self, data: st.DataObject, settle: bool, actual: int) -> None:
        if not self.holds:
            return
        reservation_id = data.draw(st.sampled_from(sorted(self.holds)))
        org_id, u, amount = self.holds.pop(reservation_id)
        assert org_id is not None
        a = self.allocs[(org_id, u)]
        a.reserved -= amount
        if settle:
            charged = min(actual, a.allocated - a.used - a.reserved)
            result = settle_reservation(reservation_id=reservation_id, actual_amount=actual)
            assert result.credits_charged == charged
            a.used += charged
            self.pools[org_id][2] += charged
        else:
            release_reservation(reservation_id=reservation_id)

    @rule(
        org=st.integers(0, ORGS - 1),
        u=st.integers(0, USERS - 1),
        v=st.integers(0, USERS - 1),
        amount=amounts,
        approve=st.booleans(),
    )
    def request_and_decide(self, org: int, u: int, v: int, amount: int, approve: bool) -> None:
        """Member ``u`` asks for ``amount``; ``v`` (deciding as an org admin) approves or
        declines. The approval raises ``u``'s allocation where it is carved from (created outside
        departments if none); nobody decides their own. An undecided request is cancelled."""
        org_id = self.orgs[org]
        asked = request_credits(org_id=org_id, requester=self.users[u], credits=amount, reason="sm")
        existing = self.allocs.get((org_id, u))
        dept = existing.dept if existing is not None else None
        decide = approve_credit_request if approve else decline_credit_request
        ok = u != v and (not approve or amount <= self.room(org_id, dept))
        call = lambda: decide(  # noqa: E731
            org_id=org_id, request_id=asked.pk, actor=self.users[v], deciders=Deciders(department_ids=None)
        )
        if not self.expect(ok, call):
            cancel_credit_request(org_id=org_id, request_id=asked.pk, actor=self.users[u])
        elif approve:
            self.allocs.setdefault((org_id, u), Alloc(dept=dept)).allocated += amount
            self.carve(org_id, dept, amount)
        expected = ("approved" if approve else "declined") if ok else "cancelled"
        assert CreditRequest.objects.get(pk=asked.pk).status == expected

    # -- recurring allocations (issue 14 §2) ---------------------------------------------------
    # Daily periods on a clock of their own, years ahead of the real one, so the other rules
    # (which run at the real time) never meet a due boundary; only ``apply_boundaries`` does.

    @rule(
        org=st.integers(0, ORGS - 1),
        u=st.integers(0, USERS - 1),
        amount=st.integers(1, 3_000),
        refill=st.booleans(),
        cap=st.one_of(st.none(), st.integers(0, 2_000)),
    )
    def make_recurring(self, org: int, u: int, amount: int, refill: bool, cap: int | None) -> None:
        """Fund the pool with twice ``amount`` and give the member a recurring daily allocation of it
        (a new one), or make their allocation recur with that amount."""
        org_id = self.orgs[org]
        self.add_credits(org, 2 * amount)  # room for the boundaries to draw on
        a = self.allocs.get((org_id, u))
        change = PeriodChange(
            period="daily",
            mode="refill" if refill else "reset",
            amount=amount,
            rollover_cap=cap if refill else None,
        )
        with time_machine.travel(self.period_clock, tick=False):
            if a is None:
                allocate_credits_to_user(org_id=org_id, user=self.users[u], amount=amount, period=change)
                a = self.allocs[(org_id, u)] = Alloc(allocated=amount)
                self.carve(org_id, None, amount)
            else:
                adjust_allocation(org_id=org_id, user=self.users[u], allocated=a.allocated, period=change)
        known = self.recurring.get((org_id, u))
        boundary = known[1] if known and known[0] is a else self.next_midnight()
        self.recurring[(org_id, u)] = (a, boundary, amount, refill, cap if refill else None)

    def next_midnight(self) -> datetime:
        return self.period_clock.replace(hour=0) + timedelta(days=1)

    @rule(days=st.integers(1, 3))
    def apply_boundaries(self, days: int) -> None:
        self.period_clock += timedelta(days=days)
        expected = 0
        for key, (a, boundary, amount, refill, cap) in list(self.recurring.items()):
            if self.allocs.get(key) is not a:
                del self.recurring[key]  # revoked (a new allocation does not recur)
                continue
            while boundary <= self.period_clock:
                unspent = a.allocated - a.used - a.reserved
                carried = min(unspent, cap or 0) if refill else 0
                wanted = a.used + max(amount + carried, a.reserved) - a.allocated
                moved = min(wanted, max(self.room(key[0], a.dept), 0)) if wanted > 0 else wanted
                a.allocated += moved
                self.carve(key[0], a.dept, moved)
                boundary += timedelta(days=1)
                expected += 1
            self.recurring[key] = (a, boundary, amount, refill, cap)
        outcome = apply_allocation_periods(now=self.period_clock)
        # Earlier examples' allocations (other orgs, same database) may be due too; ours are counted.
        assert sum(len(done.rows) for done in outcome.applied if done.org_id in self.orgs) == expected

    # -- grants (expiring credits) ------------------------------------------------------------
    @rule(
        org=st.integers(0, ORGS - 1),
        amount=amounts,
        days=st.one_of(st.none(), st.integers(1, 5)),
        priority=st.integers(0, 3),
    )
    def add_grant(self, org: int, amount: int, days: int | None, priority: int) -> None:
        org_id = self.orgs[org]
        expires_at = timezone.now() + timedelta(days=days) if days else None
        call = lambda: add_credits_to_pool(  # noqa: E731
            org_id=org_id, amount=amount, source="promotion", expires_at=expires_at, priority=priority
        )
        self.expect(True, call)
        self.pools[org_id][0] += amount

    @rule(days=st.integers(0, 8))
    def expire_grants(self, days: int) -> None:
        """The expiry pass at ``now + days``: only unallocated credits leave; members keep theirs."""
        cutoff = timezone.now() + timedelta(days=days)
        outcome = expire_credit_grants(now=cutoff)
        for org_id in self.orgs:
            forfeited = sum(step.forfeited for step in outcome.steps if step.org_id == org_id)
            self.pools[org_id][0] -= forfeited
            total, allocated, used = self.pools[org_id]
            views = org_grants(org_id=org_id)
            assert not [v for v in views if v.expires_at and v.expires_at <= cutoff and v.expired_at is None]
            # Expired credits stay only as far as members (or budgets) hold credits...
            assert sum(v.remaining_credits for v in views if v.expired_at) <= allocated - used
            # ...and a grant that just expired kept some only if nothing was left unallocated.
            for step in outcome.steps:
                if step.org_id == org_id and step.newly_expired and step.retained:
                    assert total == allocated

    # -- invariants --------------------------------------------------------------------------
    @invariant()
    def balances_match_the_model_and_reconcile(self) -> None:
        for org_id, (total, allocated, used) in self.pools.items():
            pool = OrganizationCreditPool.objects.get(org_id=org_id)
            assert (pool.total_credits, pool.allocated_credits, pool.used_credits) == (total, allocated, used)
            assert 0 <= pool.used_credits <= pool.allocated_credits <= pool.total_credits
        for (org_id, u), model in self.allocs.items():
            row = UserCreditAllocation.objects.get(org_id=org_id, user=self.users[u], is_active=True)
            assert (row.allocated_credits, row.used_credits, row.reserved_credits) == (
                model.allocated,
                model.used,
                model.reserved,
            )
            expected_department = None if model.dept is None else self.depts[(org_id, model.dept)].pk
            assert row.department_id == expected_department
        for dept in self.depts.values():
            department = Department.objects.get(pk=dept.pk)
            assert (department.budget_credits, department.allocated_credits) == (dept.budget, dept.allocated)
        live = Department.objects.filter(org_id__in=self.orgs, deleted_at__isnull=True).count()
        assert live == len(self.depts)
        active = UserCreditAllocation.objects.filter(org_id__in=self.orgs, is_active=True).count()
        assert active == len(self.allocs)
        for user_id, (total, used, reserved) in self.individual.items():
            balance = IndividualCreditBalance.objects.filter(user_id=user_id).first()
            got = (
                (0, 0, 0)
                if balance is None
                else (balance.total_credits, balance.used_credits, balance.reserved_credits)
            )
            assert got == (total, used, reserved)
        assert find_all_drifts() == []


@pytest.mark.django_db
def test_ledger_state_machine():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
