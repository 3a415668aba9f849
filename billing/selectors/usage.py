"""Usage analytics over the attribution ledger: totals, top lists and time series.

Every query here starts from ``credit_usage_attribution`` filtered by ``org_id`` and a
``created_at`` range, so it runs on the ``(org, created_at)`` / ``(org, user, created_at)``
indexes, and aggregates in SQL (``GROUP BY`` with PostgreSQL's ``date_trunc``): no Python loop
ever walks attribution rows. Amounts are integer millicredits.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from django.db.models import Count, DateField, F, QuerySet, Sum
from django.db.models.functions import Coalesce, Trunc

from billing.models import CreditUsageAttribution
from organizations.models import User

Granularity = Literal["day", "week", "month"]
GroupBy = Literal["user", "model"]
GRANULARITIES: tuple[Granularity, ...] = ("day", "week", "month")

# Inner lists of a summary are bounded; the counts say how many there are in all.
TOP_LIST_LIMIT = 50
SERIES_LIMIT = 400


@dataclass(frozen=True)
class UsageFilters:
    """What to count: ``start ≤ created_at < end``, optionally one user and one model.

    ``user_pk`` pins a user by primary key (a member's own usage); ``username`` filters by the
    API ``user_id`` (an admin's choice; an unknown one simply matches nothing).
    """

    start: datetime
    end: datetime
    user_pk: int | None = None
    username: str | None = None
    model: str | None = None


def scoped_usage_filters(
    *,
    caller: User,
    is_admin: bool,
    start: datetime,
    end: datetime,
    user_id: str | None = None,
    model: str | None = None,
) -> UsageFilters:
    """Admins (and system admins) see the whole organization, optionally one user; a member
    only ever sees their own usage, whatever ``user_id`` they ask for."""
    if not is_admin:
        return UsageFilters(start=start, end=end, user_pk=caller.pk, username=caller.username, model=model)
    return UsageFilters(start=start, end=end, username=user_id or None, model=model or None)


@dataclass(frozen=True)
class UsageTotals:
    credits_used: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    user_count: int = 0
    model_count: int = 0


@dataclass(frozen=True)
class UserUsage:
    user_id: str
    requests: int
    input_tokens: int
    output_tokens: int
    credits_used: int


@dataclass(frozen=True)
class ModelUsage:
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    credits_used: int


@dataclass(frozen=True)
class UsageBucket:
    period_start: date
    requests: int
    input_tokens: int
    output_tokens: int
    credits_used: int


@dataclass(frozen=True)
class UsageSummary:
    """``GET /credits/{org_id}/usage``: totals, top models and users, and a time series."""

    org_id: str
    filters: UsageFilters
    granularity: Granularity
    totals: UsageTotals
    by_model: list[ModelUsage] = field(default_factory=list)
    by_user: list[UserUsage] = field(default_factory=list)
    series: list[UsageBucket] = field(default_factory=list)


def attribution_rows(*, org_id: str, filters: UsageFilters) -> QuerySet[CreditUsageAttribution]:
    """The organization's attribution rows matching ``filters``, unordered (ready to group)."""
    rows = CreditUsageAttribution.objects.filter(
        org_id=org_id, created_at__gte=filters.start, created_at__lt=filters.end
    )
    if filters.user_pk is not None:
        rows = rows.filter(user_id=filters.user_pk)
    elif filters.username is not None:
        rows = rows.filter(user__username=filters.username)
    if filters.model is not None:
        rows = rows.filter(service_name=filters.model)
    return rows.order_by()


def _sums() -> dict[str, Any]:
    return {
        "requests": Count("id"),
        "input_tokens": Coalesce(Sum("input_tokens"), 0),
        "output_tokens": Coalesce(Sum("output_tokens"), 0),
        "credits_used": Coalesce(Sum("credits_used"), 0),
    }


def usage_totals(*, org_id: str, filters: UsageFilters) -> UsageTotals:
    row = attribution_rows(org_id=org_id, filters=filters).aggregate(
        **_sums(),
        user_count=Count("user_id", distinct=True),
        model_count=Count("service_name", distinct=True),
    )
    return UsageTotals(**row)


def usage_by_model(*, org_id: str, filters: UsageFilters, limit: int = TOP_LIST_LIMIT) -> list[ModelUsage]:
    """Models by credits used, most first."""
    rows: Iterable[Mapping[str, Any]] = (
        attribution_rows(org_id=org_id, filters=filters)
        .values("service_name")
        .annotate(**_sums())
        .order_by("-credits_used", "service_name")[:limit]
    )
    return [
        ModelUsage(
            model=row["service_name"],
            requests=row["requests"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            credits_used=row["credits_used"],
        )
        for row in rows
    ]


def usage_by_user(*, org_id: str, filters: UsageFilters, limit: int = TOP_LIST_LIMIT) -> list[UserUsage]:
    """Users by credits used, most first."""
    rows: Iterable[Mapping[str, Any]] = (
        attribution_rows(org_id=org_id, filters=filters)
        .values(username=F("user__username"))
        .annotate(**_sums())
        .order_by("-credits_used", "username")[:limit]
    )
    return [
        UserUsage(
            user_id=row["username"],
            requests=row["requests"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            credits_used=row["credits_used"],
        )
        for row in rows
    ]


def _bucket(granularity: Granularity) -> Trunc:
    # date_trunc in UTC; the bucket is labelled by the date it starts on (weeks start Monday).
    return Trunc("created_at", granularity, output_field=DateField(), tzinfo=UTC)


def usage_buckets(
    *, org_id: str, filters: UsageFilters, granularity: Granularity, limit: int = SERIES_LIMIT
) -> list[UsageBucket]:
    """Totals per bucket, oldest first; the most recent ``limit`` buckets that have usage."""
    rows: list[Mapping[str, Any]] = list(
        attribution_rows(org_id=org_id, filters=filters)
        .values(period_start=_bucket(granularity))
        .annotate(**_sums())
        .order_by("-period_start")[:limit]
    )
    return [UsageBucket(**row) for row in reversed(rows)]


def usage_series(
    *, org_id: str, filters: UsageFilters, granularity: Granularity, group_by: GroupBy
) -> QuerySet[CreditUsageAttribution, Any]:
    """One row per (bucket, user) or (bucket, model) with usage: ``period_start``, ``key``
    (the user id or model), ``requests``, ``input_tokens``, ``output_tokens``,
    ``credits_used``; ordered by bucket then key, ready to paginate or export."""
    key = F("user__username") if group_by == "user" else F("service_name")
    return (
        attribution_rows(org_id=org_id, filters=filters)
        .values(period_start=_bucket(granularity), key=key)
        .annotate(**_sums())
        .order_by("period_start", "key")
    )


def usage_summary(*, org_id: str, filters: UsageFilters, granularity: Granularity = "day") -> UsageSummary:
    """Four grouped queries, whatever the number of users, models or rows."""
    return UsageSummary(
        org_id=org_id,
        filters=filters,
        granularity=granularity,
        totals=usage_totals(org_id=org_id, filters=filters),
        by_model=usage_by_model(org_id=org_id, filters=filters),
        by_user=usage_by_user(org_id=org_id, filters=filters),
        series=usage_buckets(org_id=org_id, filters=filters, granularity=granularity),
    )
