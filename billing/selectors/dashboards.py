"""Dashboards of a user (every org they belong to) and of an org admin (one organization).

Each dashboard is a fixed handful of queries, whatever the number of members or usage rows:
memberships and allocations are fetched in one query each and joined in memory by user, and
usage comes grouped from ``billing.selectors.usage`` (sealed past days from the daily rollup).
Amounts are integer millicredits.
The system admin's overview lives in ``billing.selectors.system``.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

from billing.models import (
    Department,
    IndividualCreditBalance,
    OrganizationCreditPool,
    OrganizationSubscription,
    OrgBillingHistory,
    UserCreditAllocation,
)
from billing.selectors.departments import live_departments
from billing.selectors.history import org_billing_history
from billing.selectors.usage import (
    ModelUsage,
    UsageFilters,
    UsageTotals,
    UserUsage,
    usage_by_model,
    usage_by_user,
    usage_days,
    usage_totals,
)
from billing.selectors.usage_sources import UsageSources, usage_sources
from organizations.models import Organization, OrganizationMember, User
from organizations.permissions import in_api_key_scope
from organizations.selectors import active_memberships

WINDOW_DAYS = 30
MEMBER_LIMIT = 100
TOP_USERS_LIMIT = 10
TOP_MODELS_LIMIT = 20
HISTORY_LIMIT = 10
DEPARTMENT_LIMIT = 100


def percent(part: int, whole: int) -> Decimal:
    """``part`` as a percentage of ``whole``, one decimal; 0 when ``whole`` is 0."""
    if whole <= 0:
        return Decimal("0.0")
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def dashboard_window(now: datetime) -> tuple[datetime, datetime]:
    """The last ``WINDOW_DAYS`` UTC days, today included: [midnight 29 days ago, now)."""
    first_day = now.astimezone(UTC).date() - timedelta(days=WINDOW_DAYS - 1)
    return datetime.combine(first_day, time.min, tzinfo=UTC), now


# --- a user's organizations ----------------------------------------------------------------


@dataclass(frozen=True)
class OrgBalance:
    org_id: str
    org_name: str
    org_is_active: bool
    role: str
    is_default: bool
    allocated_credits: int
    used_credits: int
    reserved_credits: int
    remaining_credits: int
    allocation_expires_at: datetime | None
    allocation_expired: bool


@dataclass(frozen=True)
class IndividualBalance:
    total: int
    used: int
    reserved: int
    remaining: int


@dataclass(frozen=True)
class BalanceTotals:
    organizations: int
    allocated_credits: int
    used_credits: int
    reserved_credits: int
    remaining_credits: int
    total_remaining_credits: int


@dataclass(frozen=True)
class UserDashboard:
    user_id: str
    default_org_id: str | None
    organizations: list[OrgBalance]
    individual_credits: IndividualBalance
    totals: BalanceTotals


def user_dashboard(*, user: User, now: datetime | None = None) -> UserDashboard:
    """Every active membership with the user's allocation in it, plus their own credits.

    The default org is the one that would pay for a request without ``X-Org-Id``
    (``resolve_billing_context``): the default membership, else the oldest, of an active org.
    """
    now = now or timezone.now()
    memberships = [m for m in active_memberships(user=user) if in_api_key_scope(user, m.org_id)]
    allocations = {
        allocation.org_id: allocation
        for allocation in UserCreditAllocation.objects.filter(user=user, is_active=True)
    }
    balances = []
    for membership in memberships:
        allocation = allocations.get(membership.org_id)
        expires_at = allocation.expires_at if allocation else None
        balances.append(
            OrgBalance(
                org_id=membership.org_id,
                org_name=membership.org.org_name,
                org_is_active=membership.org.is_active,
                role=membership.role,
                is_default=membership.is_default,
                allocated_credits=allocation.allocated_credits if allocation else 0,
                used_credits=allocation.used_credits if allocation else 0,
                reserved_credits=allocation.reserved_credits if allocation else 0,
                remaining_credits=allocation.free_credits if allocation else 0,
                allocation_expires_at=expires_at,
                allocation_expired=expires_at is not None and expires_at <= now,
            )
        )
    own = IndividualCreditBalance.objects.filter(user=user).first()
    individual = IndividualBalance(
        total=own.total_credits if own else 0,
        used=own.used_credits if own else 0,
        reserved=own.reserved_credits if own else 0,
        remaining=own.free_credits if own else 0,
    )
    remaining = sum(b.remaining_credits for b in balances)
    default = next((m.org_id for m in memberships if m.org.is_active), None)
    return UserDashboard(
        user_id=user.username,
        default_org_id=default,
        organizations=balances,
        individual_credits=individual,
        totals=BalanceTotals(
            organizations=len(balances),
            allocated_credits=sum(b.allocated_credits for b in balances),
            used_credits=sum(b.used_credits for b in balances),
            reserved_credits=sum(b.reserved_credits for b in balances),
            remaining_credits=remaining,
            total_remaining_credits=remaining + individual.remaining,
        ),
    )


# --- one organization ----------------------------------------------------------------------


@dataclass(frozen=True)
class PoolSummary:
    total_credits: int
    allocated_credits: int
    used_credits: int
    available_credits: int
    percent_allocated: Decimal
    percent_used: Decimal


@dataclass(frozen=True)
class MemberBalance:
    user_id: str
    email: str
    role: str
    status: str
    joined_at: datetime
    has_allocation: bool
    allocated_credits: int
    used_credits: int
    reserved_credits: int
    remaining_credits: int
    percent_used: Decimal
    allocation_expires_at: datetime | None
    # Recurrence of the active allocation ("" when it does not recur).
    period: str = ""
    period_mode: str = ""
    next_period_start: datetime | None = None


@dataclass(frozen=True)
class DailyUsage:
    date: date
    requests: int
    credits_used: int


@dataclass(frozen=True)
class SubscriptionSummary:
    plan_code: str
    plan_name: str
    status: str
    monthly_price: Decimal
    currency: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    canceled_at: datetime | None


@dataclass(frozen=True)
class OrgDashboard:
    org_id: str
    org_name: str
    is_active: bool
    period_start: datetime
    period_end: datetime
    pool: PoolSummary
    member_count: int
    members: list[MemberBalance]
    usage: UsageTotals
    top_users: list[UserUsage]
    usage_by_model: list[ModelUsage]
    daily_usage: list[DailyUsage]
    recent_history: list[OrgBillingHistory]
    subscription: SubscriptionSummary | None
    departments: list[Department]


def pool_summary(*, org_id: str) -> PoolSummary:
    pool = OrganizationCreditPool.objects.filter(org_id=org_id).first() or OrganizationCreditPool(
        org_id=org_id
    )
    return PoolSummary(
        total_credits=pool.total_credits,
        allocated_credits=pool.allocated_credits,
        used_credits=pool.used_credits,
        available_credits=pool.available_credits,
        percent_allocated=percent(pool.allocated_credits, pool.total_credits),
        percent_used=percent(pool.used_credits, pool.total_credits),
    )


def member_balances(
    *, org_id: str, limit: int = MEMBER_LIMIT, offset: int = 0, search: str = ""
) -> tuple[int, list[MemberBalance]]:
    """(how many members the org has — matching ``search`` in their user id or e-mail, when
    given —, ``limit`` of them from ``offset`` by join date with their active allocation):
    three queries whatever the number of members."""
    # An unanswered invitation is no member: it must not show the invitee to the org.
    members_qs = OrganizationMember.objects.filter(org_id=org_id).exclude(
        status=OrganizationMember.Status.INVITED
    )
    if search:
        members_qs = members_qs.filter(Q(user__username__icontains=search) | Q(user__email__icontains=search))
    count = members_qs.count()
    members = list(members_qs.select_related("user").order_by("joined_at", "id")[offset : offset + limit])
    allocations = {
        allocation.user_id: allocation
        for allocation in UserCreditAllocation.objects.filter(
            org_id=org_id, is_active=True, user_id__in=[m.user_id for m in members]
        )
    }
    balances = []
    for member in members:
        allocation = allocations.get(member.user_id) or UserCreditAllocation()
        balances.append(
            MemberBalance(
                user_id=member.user.username,
                email=member.user.email,
                role=member.role,
                status=member.status,
                joined_at=member.joined_at,
                has_allocation=allocation.pk is not None,
                allocated_credits=allocation.allocated_credits,
                used_credits=allocation.used_credits,
                reserved_credits=allocation.reserved_credits,
                remaining_credits=allocation.free_credits,
                percent_used=percent(allocation.used_credits, allocation.allocated_credits),
                allocation_expires_at=allocation.expires_at,
                period=allocation.period,
                period_mode=allocation.period_mode,
                next_period_start=allocation.next_period_start,
            )
        )
    return count, balances


def daily_usage(
    *, org_id: str, start: datetime, end: datetime, sources: UsageSources | None = None
) -> list[DailyUsage]:
    """One entry per UTC day from ``start`` to ``end``, days without usage as zeros."""
    by_day = usage_days(org_id=org_id, filters=UsageFilters(start=start, end=end), sources=sources)
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    series = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        requests, credits = by_day.get(day, (0, 0))
        series.append(DailyUsage(date=day, requests=requests, credits_used=credits))
    return series


def subscription_summary(*, org_id: str) -> SubscriptionSummary | None:
    """The live (pending or active) subscription, else the most recent one."""
    subscription = (
        OrganizationSubscription.objects.filter(org_id=org_id)
        .select_related("plan")
        .annotate(
            is_live=Case(
                When(status__in=["pending", "active"], then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("is_live", "-created_at", "-id")
        .first()
    )
    if subscription is None:
        return None
    return SubscriptionSummary(
        plan_code=subscription.plan.plan_code,
        plan_name=subscription.plan.name,
        status=subscription.status,
        monthly_price=subscription.plan.monthly_price,
        currency=subscription.plan.currency,
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        canceled_at=subscription.canceled_at,
    )


def org_dashboard(
    *, org: Organization, now: datetime | None = None, member_offset: int = 0, member_search: str = ""
) -> OrgDashboard:
    """An org admin's view: pool, members (a page of them, optionally searched), the last 30
    days' usage, history, subscription, and the live departments' figures."""
    start, end = dashboard_window(now or timezone.now())
    window = UsageFilters(start=start, end=end)
    sources = usage_sources(start=start, end=end)
    member_count, members = member_balances(org_id=org.id, offset=member_offset, search=member_search)
    return OrgDashboard(
        org_id=org.id,
        org_name=org.org_name,
        is_active=org.is_active,
        period_start=start,
        period_end=end,
        pool=pool_summary(org_id=org.id),
        member_count=member_count,
        members=members,
        usage=usage_totals(org_id=org.id, filters=window, sources=sources),
        top_users=usage_by_user(org_id=org.id, filters=window, limit=TOP_USERS_LIMIT, sources=sources),
        usage_by_model=usage_by_model(org_id=org.id, filters=window, limit=TOP_MODELS_LIMIT, sources=sources),
        daily_usage=daily_usage(org_id=org.id, start=start, end=end, sources=sources),
        recent_history=list(org_billing_history(org_id=org.id)[:HISTORY_LIMIT]),
        subscription=subscription_summary(org_id=org.id),
        departments=list(live_departments(org=org)[:DEPARTMENT_LIMIT]),
    )
