"""The system admin's overview across every organization: totals, top orgs by usage, revenue
from the billing history, and the organizations about to run out of credits.

It is the one reader not keyed by a single org: each part is one grouped query (eight in
all), never a loop over organizations.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import (
    Count,
    DecimalField,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, NullIf
from django.utils import timezone

from billing.models import (
    CreditUsageAttribution,
    OrganizationCreditPool,
    OrgBillingHistory,
    UserCreditAllocation,
)
from billing.selectors.dashboards import dashboard_window, percent
from organizations.models import Organization, OrganizationMember

TOP_ORGS_LIMIT = 10
NEAR_EXHAUSTION_LIMIT = 50
# A pool is nearly exhausted below 10% unallocated; an allocation from 90% used.
POOL_AVAILABLE_THRESHOLD_PERCENT = 10
ALLOCATION_USED_THRESHOLD_PERCENT = 90
# Money received: purchases and payments in, refunds out. Invoices are billed, not received
# (their payment is a ``payment`` row), and subscription changes only record the plan price.
REVENUE_SIGN: dict[str, int] = {
    OrgBillingHistory.EventType.CREDIT_PURCHASE: 1,
    OrgBillingHistory.EventType.PAYMENT: 1,
    OrgBillingHistory.EventType.REFUND: -1,
}
REVENUE_CURRENCY = "USD"


@dataclass(frozen=True)
class SystemTotals:
    organizations: int
    active_organizations: int
    active_members: int
    pool_total_credits: int
    pool_allocated_credits: int
    pool_used_credits: int
    pool_available_credits: int
    credits_used_last_30_days: int
    requests_last_30_days: int


@dataclass(frozen=True)
class OrgUsageRank:
    org_id: str
    org_name: str
    credits_used: int
    requests: int


@dataclass(frozen=True)
class RevenueLine:
    event_type: str
    currency: str
    count: int
    amount: Decimal
    credits: int


@dataclass(frozen=True)
class Revenue:
    currency: str
    total_last_30_days: Decimal
    total_all_time: Decimal
    last_30_days: list[RevenueLine]
    all_time: list[RevenueLine]


@dataclass(frozen=True)
class NearExhaustion:
    org_id: str
    org_name: str
    total_credits: int
    allocated_credits: int
    available_credits: int
    percent_available: Decimal
    pool_nearly_allocated: bool
    allocations_near_exhaustion: int


@dataclass(frozen=True)
class SystemDashboard:
    period_start: datetime
    period_end: datetime
    totals: SystemTotals
    top_orgs: list[OrgUsageRank]
    revenue: Revenue
    near_exhaustion_count: int
    orgs_near_exhaustion: list[NearExhaustion]


def _totals(since: datetime, until: datetime) -> SystemTotals:
    orgs = Organization.objects.aggregate(
        organizations=Count("id"), active_organizations=Count("id", filter=Q(is_active=True))
    )
    members = OrganizationMember.objects.filter(status=OrganizationMember.Status.ACTIVE).count()
    pools = OrganizationCreditPool.objects.aggregate(
        total=Coalesce(Sum("total_credits"), 0),
        allocated=Coalesce(Sum("allocated_credits"), 0),
        used=Coalesce(Sum("used_credits"), 0),
    )
    usage = CreditUsageAttribution.objects.filter(
        org__isnull=False, created_at__gte=since, created_at__lt=until
    ).aggregate(credits=Coalesce(Sum("credits_used"), 0), requests=Count("id"))
    return SystemTotals(
        organizations=orgs["organizations"],
        active_organizations=orgs["active_organizations"],
        active_members=members,
        pool_total_credits=pools["total"],
        pool_allocated_credits=pools["allocated"],
        pool_used_credits=pools["used"],
        pool_available_credits=pools["total"] - pools["allocated"],
        credits_used_last_30_days=usage["credits"],
        requests_last_30_days=usage["requests"],
    )


def _top_orgs(since: datetime, until: datetime) -> list[OrgUsageRank]:
    rows = (
        CreditUsageAttribution.objects.filter(org__isnull=False, created_at__gte=since, created_at__lt=until)
        .order_by()
        .values("org_id", org_name=F("org__org_name"))
        .annotate(credits_used=Coalesce(Sum("credits_used"), 0), requests=Count("id"))
        .order_by("-credits_used", "org_id")[:TOP_ORGS_LIMIT]
    )
    return [OrgUsageRank(**row) for row in rows]


def _revenue(since: datetime) -> Revenue:
    money = DecimalField(max_digits=14, decimal_places=2)
    recent = Q(occurred_at__gte=since)
    rows = (
        OrgBillingHistory.objects.order_by()
        .values("event_type", "currency")
        .annotate(
            count_all=Count("id"),
            amount_all=Coalesce(Sum("amount"), Value(Decimal("0.00")), output_field=money),
            credits_all=Coalesce(Sum("credits"), 0),
            count_recent=Count("id", filter=recent),
            amount_recent=Coalesce(Sum("amount", filter=recent), Value(Decimal("0.00")), output_field=money),
            credits_recent=Coalesce(Sum("credits", filter=recent), 0),
        )
        .order_by("event_type", "currency")
    )
    all_time, last_30_days = [], []
    for row in rows:  # one row per (event type, currency): a handful
        all_time.append(
            RevenueLine(
                row["event_type"], row["currency"], row["count_all"], row["amount_all"], row["credits_all"]
            )
        )
        if row["count_recent"]:
            last_30_days.append(
                RevenueLine(
                    row["event_type"],
                    row["currency"],
                    row["count_recent"],
                    row["amount_recent"],
                    row["credits_recent"],
                )
            )

    def total(lines: list[RevenueLine]) -> Decimal:
        return sum(
            (
                REVENUE_SIGN.get(line.event_type, 0) * line.amount
                for line in lines
                if line.currency == REVENUE_CURRENCY
            ),
            Decimal("0.00"),
        )

    return Revenue(
        currency=REVENUE_CURRENCY,
        total_last_30_days=total(last_30_days),
        total_all_time=total(all_time),
        last_30_days=last_30_days,
        all_time=all_time,
    )


def _near_exhaustion() -> tuple[int, list[NearExhaustion]]:
    exhausted_allocations = (
        UserCreditAllocation.objects.filter(
            org_id=OuterRef("org_id"), is_active=True, allocated_credits__gt=0
        )
        .alias(used_scaled=F("used_credits") * 100)
        .filter(used_scaled__gte=F("allocated_credits") * ALLOCATION_USED_THRESHOLD_PERCENT)
        .order_by()
        .values("org_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    pools = (
        OrganizationCreditPool.objects.filter(org__is_active=True)
        .annotate(
            near_allocations=Coalesce(Subquery(exhausted_allocations, output_field=IntegerField()), 0),
            available_ratio=Cast(F("total_credits") - F("allocated_credits"), FloatField())
            / NullIf(Cast(F("total_credits"), FloatField()), 0.0),
        )
        .alias(available_scaled=(F("total_credits") - F("allocated_credits")) * 100)
        .filter(
            Q(total_credits__gt=0, available_scaled__lt=F("total_credits") * POOL_AVAILABLE_THRESHOLD_PERCENT)
            | Q(near_allocations__gt=0)
        )
    )
    count = pools.count()
    rows = pools.select_related("org").order_by(
        F("available_ratio").asc(nulls_last=True), "-near_allocations", "org_id"
    )[:NEAR_EXHAUSTION_LIMIT]
    return count, [
        NearExhaustion(
            org_id=pool.org_id,
            org_name=pool.org.org_name,
            total_credits=pool.total_credits,
            allocated_credits=pool.allocated_credits,
            available_credits=pool.available_credits,
            percent_available=percent(pool.available_credits, pool.total_credits),
            pool_nearly_allocated=pool.total_credits > 0
            and pool.available_credits * 100 < pool.total_credits * POOL_AVAILABLE_THRESHOLD_PERCENT,
            allocations_near_exhaustion=pool.near_allocations,  # type: ignore[attr-defined]
        )
        for pool in rows
    ]


def system_dashboard(*, now: datetime | None = None) -> SystemDashboard:
    since, until = dashboard_window(now or timezone.now())
    near_count, near = _near_exhaustion()
    return SystemDashboard(
        period_start=since,
        period_end=until,
        totals=_totals(since, until),
        top_orgs=_top_orgs(since, until),
        revenue=_revenue(since),
        near_exhaustion_count=near_count,
        orgs_near_exhaustion=near,
    )
