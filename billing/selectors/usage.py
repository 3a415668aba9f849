"""Usage analytics: totals, top lists and time series of an organization.

Every query aggregates, in SQL, one subquery of daily usage rows (``usage_rows``): whole past
UTC days whose rollup is sealed come from ``usage_daily_rollups`` (on its ``(org, day)`` index),
the rest — today, partial days at the period's edges, days not (yet) rolled up — from
``credit_usage_attribution`` (on its ``(org, created_at)`` index); see
``billing.selectors.usage_sources``. The answers are those of the ledger alone; no Python loop
ever walks usage rows. Amounts are integer millicredits.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from django.db import connection
from django.db.models import QuerySet

from billing.ledger.charges import TOKEN_DETAILS
from billing.models import CreditUsageAttribution
from billing.selectors.usage_sources import UsageSources, usage_rows_sql, usage_sources
from organizations.models import User

Granularity = Literal["day", "week", "month"]
GroupBy = Literal["user", "model", "department"]
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
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    audio_input_tokens: int = 0
    reasoning_tokens: int = 0
    audio_output_tokens: int = 0
    user_count: int = 0
    model_count: int = 0


@dataclass(frozen=True)
class UserUsage:
    user_id: str
    requests: int
    input_tokens: int
    output_tokens: int
    credits_used: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    audio_input_tokens: int = 0
    reasoning_tokens: int = 0
    audio_output_tokens: int = 0


@dataclass(frozen=True)
class ModelUsage:
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    credits_used: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    audio_input_tokens: int = 0
    reasoning_tokens: int = 0
    audio_output_tokens: int = 0


@dataclass(frozen=True)
class UsageBucket:
    period_start: date
    requests: int
    input_tokens: int
    output_tokens: int
    credits_used: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    audio_input_tokens: int = 0
    reasoning_tokens: int = 0
    audio_output_tokens: int = 0


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
    """The organization's attribution rows matching ``filters``, unordered (ready to group).
    The ledger alone: the analytics below read past days from the rollup instead."""
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


def usage_rows(
    *, org_id: str, filters: UsageFilters, sources: UsageSources | None = None
) -> tuple[str, list[Any]]:
    """The subquery of daily usage rows matching ``filters``: sealed past days from the rollup,
    the rest from the ledger (``billing.selectors.usage_sources``). Pass ``sources`` (computed
    once for ``filters``' period) to save its query when several figures share a period."""
    return usage_rows_sql(
        org_id=org_id,
        sources=sources or usage_sources(start=filters.start, end=filters.end),
        user_pk=filters.user_pk,
        username=filters.username,
        model=filters.model,
    )


_SUMS = (
    "COALESCE(SUM(u.requests), 0)::bigint AS requests, "
    "COALESCE(SUM(u.input_tokens), 0)::bigint AS input_tokens, "
    "COALESCE(SUM(u.output_tokens), 0)::bigint AS output_tokens, "
    + "".join(f"COALESCE(SUM(u.{name}), 0)::bigint AS {name}, " for name in TOKEN_DETAILS)
    + "COALESCE(SUM(u.credits_used), 0)::bigint AS credits_used"
)
_JOIN_USERS = f"JOIN {User._meta.db_table} usr ON usr.id = u.user_id"
# A member's usage counts for the department of their active allocation in the org, else of
# their latest one (the daily rollups keep no allocation): a member moved to another department
# takes their history with them. Usage outside every department has no department (NULL).
_JOIN_DEPARTMENTS = (
    "LEFT JOIN LATERAL (SELECT a.department_id FROM user_credit_allocations a "
    "WHERE a.org_id = %s AND a.user_id = u.user_id ORDER BY a.is_active DESC, a.id DESC LIMIT 1) ad "
    "ON true LEFT JOIN departments d ON d.id = ad.department_id"
)


def _fetch(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [column.name for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def usage_totals(*, org_id: str, filters: UsageFilters, sources: UsageSources | None = None) -> UsageTotals:
    rows, params = usage_rows(org_id=org_id, filters=filters, sources=sources)
    (row,) = _fetch(
        f"SELECT {_SUMS}, COUNT(DISTINCT u.user_id) AS user_count, COUNT(DISTINCT u.model) AS model_count "
        f"FROM ({rows}) u",
        params,
    )
    return UsageTotals(**row)


def usage_by_model(
    *, org_id: str, filters: UsageFilters, limit: int = TOP_LIST_LIMIT, sources: UsageSources | None = None
) -> list[ModelUsage]:
    """Models by credits used, most first."""
    rows, params = usage_rows(org_id=org_id, filters=filters, sources=sources)
    return [
        ModelUsage(**row)
        for row in _fetch(
            f"SELECT u.model AS model, {_SUMS} FROM ({rows}) u "
            "GROUP BY u.model ORDER BY credits_used DESC, model LIMIT %s",
            [*params, limit],
        )
    ]


def usage_by_user(
    *, org_id: str, filters: UsageFilters, limit: int = TOP_LIST_LIMIT, sources: UsageSources | None = None
) -> list[UserUsage]:
    """Users by credits used, most first."""
    rows, params = usage_rows(org_id=org_id, filters=filters, sources=sources)
    return [
        UserUsage(**row)
        for row in _fetch(
            f"SELECT usr.username AS user_id, {_SUMS} FROM ({rows}) u {_JOIN_USERS} "
            "GROUP BY usr.username ORDER BY credits_used DESC, usr.username LIMIT %s",
            [*params, limit],
        )
    ]


def _bucket(granularity: Granularity) -> str:
    # Weeks start on Monday; the rows' days are UTC days already.
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}")
    return f"date_trunc('{granularity}', u.day::timestamp)::date"


def usage_buckets(
    *,
    org_id: str,
    filters: UsageFilters,
    granularity: Granularity,
    limit: int = SERIES_LIMIT,
    sources: UsageSources | None = None,
) -> list[UsageBucket]:
    """Totals per bucket, oldest first; the most recent ``limit`` buckets that have usage."""
    rows, params = usage_rows(org_id=org_id, filters=filters, sources=sources)
    newest_first = _fetch(
        f"SELECT {_bucket(granularity)} AS period_start, {_SUMS} FROM ({rows}) u "
        "GROUP BY 1 ORDER BY 1 DESC LIMIT %s",
        [*params, limit],
    )
    return [UsageBucket(**row) for row in reversed(newest_first)]


class UsageSeriesRows:
    """One row per (bucket, user) or (bucket, model), ordered by bucket then key; sliceable and
    countable in SQL (``LIMIT``/``OFFSET``, ``COUNT``), so a paginator or an export reads only
    what it shows."""

    def __init__(self, sql: str, params: list[Any]) -> None:
        self._sql = sql
        self._params = params

    def count(self) -> int:
        return int(_fetch(f"SELECT COUNT(*) AS n FROM ({self._sql}) s", self._params)[0]["n"])

    def __getitem__(self, item: slice) -> list[dict[str, Any]]:
        if not isinstance(item, slice) or item.step is not None:
            raise TypeError("usage series rows are read by slices")
        offset = item.start or 0
        if item.stop is None:
            return _fetch(f"{self._sql} OFFSET %s", [*self._params, offset])
        limit = max(item.stop - offset, 0)
        return _fetch(f"{self._sql} LIMIT %s OFFSET %s", [*self._params, limit, offset])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self[0:])


def usage_series(
    *,
    org_id: str,
    filters: UsageFilters,
    granularity: Granularity,
    group_by: GroupBy,
    sources: UsageSources | None = None,
) -> UsageSeriesRows:
    """One row per (bucket, user), (bucket, model) or (bucket, department) with usage:
    ``period_start``, ``key`` (the user id, model or department name, ``""`` outside
    departments), ``department_id`` (departments only), ``requests``, ``input_tokens``,
    ``output_tokens``, ``credits_used``; ordered by bucket then key, ready to paginate or export."""
    rows, params = usage_rows(org_id=org_id, filters=filters, sources=sources)
    if group_by == "department":
        return UsageSeriesRows(
            f"SELECT {_bucket(granularity)} AS period_start, COALESCE(d.name, '') AS key, "
            f"d.id AS department_id, {_SUMS} FROM ({rows}) u {_JOIN_DEPARTMENTS} "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            [*params, org_id],
        )
    key, join = ("usr.username", _JOIN_USERS) if group_by == "user" else ("u.model", "")
    return UsageSeriesRows(
        f"SELECT {_bucket(granularity)} AS period_start, {key} AS key, {_SUMS} FROM ({rows}) u {join} "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )


def usage_days(
    *, org_id: str, filters: UsageFilters, sources: UsageSources | None = None
) -> dict[date, tuple[int, int]]:
    """``{UTC day: (requests, credits_used)}`` for the days with usage."""
    rows, params = usage_rows(org_id=org_id, filters=filters, sources=sources)
    return {
        row["day"]: (row["requests"], row["credits_used"])
        for row in _fetch(f"SELECT u.day AS day, {_SUMS} FROM ({rows}) u GROUP BY u.day", params)
    }


def usage_summary(*, org_id: str, filters: UsageFilters, granularity: Granularity = "day") -> UsageSummary:
    """Five queries (the period's sources, then four grouped), whatever the number of users,
    models or rows."""
    sources = usage_sources(start=filters.start, end=filters.end)
    return UsageSummary(
        org_id=org_id,
        filters=filters,
        granularity=granularity,
        totals=usage_totals(org_id=org_id, filters=filters, sources=sources),
        by_model=usage_by_model(org_id=org_id, filters=filters, sources=sources),
        by_user=usage_by_user(org_id=org_id, filters=filters, sources=sources),
        series=usage_buckets(org_id=org_id, filters=filters, granularity=granularity, sources=sources),
    )
