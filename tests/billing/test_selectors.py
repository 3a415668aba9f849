"""Usage, dashboard and system selectors: figures from data written through the services."""

import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from billing.selectors.dashboards import (
    WINDOW_DAYS,
    dashboard_window,
    member_balances,
    org_dashboard,
    percent,
    user_dashboard,
)
from billing.selectors.history import org_billing_history
from billing.selectors.system import system_dashboard
from billing.selectors.usage import (
    UsageFilters,
    scoped_usage_filters,
    usage_buckets,
    usage_series,
    usage_summary,
)
from billing.services import (
    add_credits_to_pool,
    add_individual_credits,
    deduct_credits,
)
from billing.services.subscriptions import create_subscription
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db


@contextmanager
def frozen_now(moment: datetime):
    """Services stamp rows with ``timezone.now()``: pin it to write usage in the past."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def charge(user, org, credits, *, model="gpt-4o", at=None, input_tokens=10, output_tokens=5):
    """One metered call through the ledger service, optionally at a given moment."""
    kwargs = dict(
        user=user,
        org_id=org.id,
        amount=mc(credits),
        request_id=f"req-{uuid.uuid4()}",
        service_name=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
    if at is None:
        return deduct_credits(**kwargs)
    with frozen_now(at):
        return deduct_credits(**kwargs)


def window(days=30, end=None) -> UsageFilters:
    end = end or timezone.now() + timedelta(seconds=1)
    return UsageFilters(start=end - timedelta(days=days), end=end)


@pytest.fixture
def team(make_funded_member):
    """One org, two members with 100 credits each, and a second org with its own member."""
    org, alice, _ = make_funded_member(pool=1000, allocation=100)
    _, bob, _ = make_funded_member(allocation=100, org=org, pool=0)
    other_org, carol, _ = make_funded_member(pool=500, allocation=50)
    return org, alice, bob, other_org, carol


# --- usage ---------------------------------------------------------------------------------


def test_usage_summary_totals_by_model_and_by_user_in_credits_order(team):
    org, alice, bob, other_org, carol = team
    charge(alice, org, "1.5", model="gpt-4o", input_tokens=100, output_tokens=50)
    charge(alice, org, "2", model="claude", input_tokens=10, output_tokens=5)
    charge(bob, org, "0.25", model="gpt-4o", input_tokens=1, output_tokens=1)
    charge(carol, other_org, "9", model="gpt-4o")

    summary = usage_summary(org_id=org.id, filters=window())

    assert summary.totals.credits_used == mc("3.75")
    assert summary.totals.requests == 3
    assert summary.totals.input_tokens == 111
    assert summary.totals.output_tokens == 56
    assert (summary.totals.user_count, summary.totals.model_count) == (2, 2)
    assert [(m.model, m.credits_used, m.requests) for m in summary.by_model] == [
        ("claude", mc(2), 1),
        ("gpt-4o", mc("1.75"), 2),
    ]
    assert [(u.user_id, u.credits_used) for u in summary.by_user] == [
        (alice.username, mc("3.5")),
        (bob.username, mc("0.25")),
    ]
    assert [b.credits_used for b in summary.series] == [mc("3.75")]


def test_usage_outside_the_period_is_not_counted(team):
    org, alice, *_ = team
    now = timezone.now()
    charge(alice, org, 1, at=now - timedelta(days=40))
    charge(alice, org, 2)

    summary = usage_summary(org_id=org.id, filters=window(days=30))

    assert summary.totals.credits_used == mc(2)
    assert summary.totals.requests == 1


def test_user_and_model_filters(team):
    org, alice, bob, *_ = team
    charge(alice, org, 1, model="gpt-4o")
    charge(alice, org, 2, model="claude")
    charge(bob, org, 4, model="claude")
    base = window()

    by_alice = usage_summary(
        org_id=org.id, filters=UsageFilters(base.start, base.end, username=alice.username)
    )
    claude = usage_summary(org_id=org.id, filters=UsageFilters(base.start, base.end, model="claude"))
    nobody = usage_summary(org_id=org.id, filters=UsageFilters(base.start, base.end, username="no-such-user"))

    assert by_alice.totals.credits_used == mc(3)
    assert claude.totals.credits_used == mc(6)
    assert nobody.totals.requests == 0 and nobody.by_user == [] and nobody.by_model == []


def test_a_member_is_pinned_to_their_own_usage_whatever_they_ask(team):
    org, alice, bob, *_ = team
    now = timezone.now()

    member = scoped_usage_filters(caller=alice, is_admin=False, start=now, end=now, user_id=bob.username)
    admin = scoped_usage_filters(caller=alice, is_admin=True, start=now, end=now, user_id=bob.username)
    admin_all = scoped_usage_filters(caller=alice, is_admin=True, start=now, end=now, user_id=None)

    assert (member.user_pk, member.username) == (alice.pk, alice.username)
    assert (admin.user_pk, admin.username) == (None, bob.username)
    assert (admin_all.user_pk, admin_all.username) == (None, None)


def test_series_buckets_by_day_week_and_month_in_utc(team):
    org, alice, bob, *_ = team
    # Monday 2025-03-03, Wednesday 2025-03-05, Monday 2025-03-10, Tuesday 2025-04-01 (UTC)
    charge(alice, org, 1, at=datetime(2025, 3, 3, 0, 30, tzinfo=UTC))
    charge(alice, org, 2, at=datetime(2025, 3, 5, 23, 59, tzinfo=UTC))
    charge(bob, org, 4, at=datetime(2025, 3, 10, 12, tzinfo=UTC))
    charge(alice, org, 8, at=datetime(2025, 4, 1, 12, tzinfo=UTC))
    period = UsageFilters(start=datetime(2025, 3, 1, tzinfo=UTC), end=datetime(2025, 5, 1, tzinfo=UTC))

    def series(granularity, group_by="user"):
        rows = usage_series(org_id=org.id, filters=period, granularity=granularity, group_by=group_by)
        return [(r["period_start"], r["key"], r["credits_used"], r["requests"]) for r in rows]

    assert series("week") == [
        (date(2025, 3, 3), alice.username, mc(3), 2),
        (date(2025, 3, 10), bob.username, mc(4), 1),
        (date(2025, 3, 31), alice.username, mc(8), 1),
    ]
    assert series("month", group_by="model") == [
        (date(2025, 3, 1), "gpt-4o", mc(7), 3),
        (date(2025, 4, 1), "gpt-4o", mc(8), 1),
    ]
    days = usage_buckets(org_id=org.id, filters=period, granularity="day")
    assert [(b.period_start, b.credits_used) for b in days] == [
        (date(2025, 3, 3), mc(1)),
        (date(2025, 3, 5), mc(2)),
        (date(2025, 3, 10), mc(4)),
        (date(2025, 4, 1), mc(8)),
    ]
    assert [
        b.period_start for b in usage_buckets(org_id=org.id, filters=period, granularity="day", limit=2)
    ] == [
        date(2025, 3, 10),
        date(2025, 4, 1),
    ]


def test_series_never_contains_another_orgs_rows(team):
    org, alice, _, other_org, carol = team
    charge(alice, org, 1)
    charge(carol, other_org, 2)

    rows = list(usage_series(org_id=org.id, filters=window(), granularity="day", group_by="user"))

    assert [r["key"] for r in rows] == [alice.username]


# --- dashboards ----------------------------------------------------------------------------


def test_percent_rounds_half_up_to_one_decimal_and_is_zero_for_nothing():
    assert percent(1, 3) == Decimal("33.3")
    assert percent(2, 3) == Decimal("66.7")
    assert percent(5, 0) == Decimal("0.0")


def test_dashboard_window_is_thirty_utc_days_including_today():
    now = datetime(2025, 3, 31, 15, tzinfo=UTC)
    start, end = dashboard_window(now)
    assert start == datetime(2025, 3, 2, tzinfo=UTC)
    assert end == now


def test_user_dashboard_lists_every_active_membership_with_its_allocation(make_funded_member):
    org_a, user, _ = make_funded_member(pool=1000, allocation=100)
    org_b = OrganizationFactory()
    add_member(org_id=org_b.id, user=user, is_default=True, role="admin")
    suspended_org, other, _ = make_funded_member()
    charge(user, org_a, "10.5")
    add_individual_credits(user=user, amount=mc(20))

    dashboard = user_dashboard(user=user)

    assert dashboard.default_org_id == org_b.id
    rows = {b.org_id: b for b in dashboard.organizations}
    assert set(rows) == {org_a.id, org_b.id}
    assert (rows[org_a.id].allocated_credits, rows[org_a.id].used_credits) == (mc(100), mc("10.5"))
    assert rows[org_a.id].remaining_credits == mc("89.5")
    assert rows[org_b.id].role == "admin" and rows[org_b.id].allocated_credits == 0
    assert dashboard.individual_credits.remaining == mc(20)
    assert dashboard.totals.remaining_credits == mc("89.5")
    assert dashboard.totals.total_remaining_credits == mc("109.5")


def test_user_dashboard_without_anything_is_zeros():
    dashboard = user_dashboard(user=UserFactory())
    assert dashboard.organizations == []
    assert dashboard.default_org_id is None
    assert dashboard.totals.total_remaining_credits == 0


def test_org_dashboard_figures(team):
    org, alice, bob, other_org, carol = team
    charge(alice, org, 80, model="gpt-4o")
    charge(bob, org, 5, model="claude", at=timezone.now() - timedelta(days=3))
    charge(carol, other_org, 7)

    dashboard = org_dashboard(org=org)

    assert dashboard.pool.total_credits == mc(1000)
    assert dashboard.pool.allocated_credits == mc(200)
    assert dashboard.pool.percent_allocated == Decimal("20.0")
    assert dashboard.member_count == 2
    members = {m.user_id: m for m in dashboard.members}
    assert members[alice.username].percent_used == Decimal("80.0")
    assert members[alice.username].remaining_credits == mc(20)
    assert [u.user_id for u in dashboard.top_users] == [alice.username, bob.username]
    assert [m.model for m in dashboard.usage_by_model] == ["gpt-4o", "claude"]
    assert dashboard.usage.credits_used == mc(85)
    assert len(dashboard.daily_usage) == WINDOW_DAYS
    assert dashboard.daily_usage[-1].credits_used == mc(80)
    assert dashboard.daily_usage[-4].credits_used == mc(5)
    assert sum(d.credits_used for d in dashboard.daily_usage) == mc(85)
    assert dashboard.subscription is None
    assert [h.org_id for h in dashboard.recent_history] == [org.id]


def test_org_dashboard_subscription_and_history_newest_first():
    owner = UserFactory()
    create_subscription(org_id="dash-org", plan_code="professional", owner=owner, initial_credits=mc(100))
    for n in range(12):
        add_credits_to_pool(org_id="dash-org", amount=mc(1), external_id=f"grant-{n}")

    dashboard = org_dashboard(org=owner.memberships.get().org)

    assert dashboard.subscription is not None
    assert (dashboard.subscription.plan_code, dashboard.subscription.status) == ("professional", "active")
    assert len(dashboard.recent_history) == 10
    assert dashboard.recent_history[0].external_id == "grant-11"
    assert list(org_billing_history(org_id="dash-org")[:1]) == dashboard.recent_history[:1]


def test_member_balances_are_capped_with_the_full_count(make_funded_member):
    org, *_ = make_funded_member()
    for _ in range(4):
        add_member(org_id=org.id, user=UserFactory())

    count, members = member_balances(org_id=org.id, limit=3)

    assert count == 5
    assert len(members) == 3


# --- system --------------------------------------------------------------------------------


def test_system_dashboard_totals_top_orgs_and_revenue(team):
    org, alice, _, other_org, carol = team
    add_credits_to_pool(org_id=org.id, amount=mc(5000), purchase_amount=Decimal("50.00"))
    with frozen_now(timezone.now() - timedelta(days=60)):
        add_credits_to_pool(org_id=other_org.id, amount=mc(1000), purchase_amount=Decimal("10.00"))
    charge(alice, org, 3)
    charge(carol, other_org, 9)

    dashboard = system_dashboard()

    assert dashboard.totals.organizations == 2
    assert dashboard.totals.active_members == 3
    assert dashboard.totals.pool_total_credits == mc(1000 + 500 + 5000 + 1000)
    assert dashboard.totals.credits_used_last_30_days == mc(12)
    assert [(o.org_id, o.credits_used) for o in dashboard.top_orgs] == [
        (other_org.id, mc(9)),
        (org.id, mc(3)),
    ]
    assert dashboard.revenue.total_all_time == Decimal("60.00")
    assert dashboard.revenue.total_last_30_days == Decimal("50.00")
    purchases = {line.event_type: line for line in dashboard.revenue.all_time}["credit_purchase"]
    assert (purchases.count, purchases.amount, purchases.credits) == (2, Decimal("60.00"), mc(6000))


def test_orgs_near_exhaustion_by_pool_or_by_allocation(make_funded_member):
    healthy, *_ = make_funded_member(pool=1000, allocation=100)
    pool_nearly_allocated, *_ = make_funded_member(pool=1000, allocation=950)
    busy_allocation_org, busy_user, _ = make_funded_member(pool=1000, allocation=100)
    charge(busy_user, busy_allocation_org, 90)

    dashboard = system_dashboard()

    rows = {row.org_id: row for row in dashboard.orgs_near_exhaustion}
    assert set(rows) == {pool_nearly_allocated.id, busy_allocation_org.id}
    assert dashboard.near_exhaustion_count == 2
    assert rows[pool_nearly_allocated.id].pool_nearly_allocated is True
    assert rows[pool_nearly_allocated.id].percent_available == Decimal("5.0")
    assert rows[busy_allocation_org.id].allocations_near_exhaustion == 1
    assert rows[busy_allocation_org.id].pool_nearly_allocated is False
    assert healthy.id not in rows
