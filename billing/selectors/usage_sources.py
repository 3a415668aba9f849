"""Where the usage of a period is read from: the daily rollup for sealed whole days, the ledger
for the rest.

A whole UTC day inside the period whose rollup is sealed (``UsageDailyRollup`` rows vouched for
by a ``UsageRollupDay`` marker, see ``billing.services.rollups``) is read from the rollup; every
other part of the period — today, the partial days at the edges of a date-time period, and any
day never rolled up or rolled up before it could be final — is read from the attribution ledger.
Both sides come out as one SQL subquery of rows ``(day, user_id, model, requests, input_tokens,
output_tokens, credits_used)``, which ``billing.selectors.usage`` aggregates; so an org with
millions of attribution rows scans the ledger only for the recent, unsealed part.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from billing.models import CreditUsageAttribution, UsageDailyRollup, UsageRollupDay
from billing.models.usage import SEAL_AFTER
from organizations.models import User

_ROLLUP = UsageDailyRollup._meta.db_table
_LEDGER = CreditUsageAttribution._meta.db_table
_USERS = User._meta.db_table
# The token breakdown columns, summed alongside the totals (billing/call_usage.py).
_BREAKDOWN = (
    "cached_tokens",
    "cache_write_tokens",
    "audio_input_tokens",
    "reasoning_tokens",
    "audio_output_tokens",
)


@dataclass(frozen=True)
class UsageSources:
    """``rollup_days``: inclusive runs of sealed whole days; ``ledger_ranges``: ``[start, end)``
    ranges read from the ledger. Together they cover the period exactly once."""

    rollup_days: tuple[tuple[date, date], ...]
    ledger_ranges: tuple[tuple[datetime, datetime], ...]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def sealed_days(*, first: date, last: date) -> set[date]:
    """The days of ``first``..``last`` whose rollup was last computed by a complete pass started
    ``SEAL_AFTER`` or more after the day ended."""
    markers = UsageRollupDay.objects.filter(day__gte=first, day__lte=last).values_list("day", "computed_at")
    return {day for day, at in markers if at >= _midnight(day + timedelta(days=1)) + SEAL_AFTER}


def usage_sources(*, start: datetime, end: datetime) -> UsageSources:
    """Split ``[start, end)`` between the rollup (sealed whole days) and the ledger (the rest)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = (start - timedelta(microseconds=1)).date() + timedelta(days=1)  # first midnight ≥ start
    last = end.date() - timedelta(days=1)  # the day before the one ``end`` falls in
    if end <= start or first > last:
        return UsageSources(rollup_days=(), ledger_ranges=((start, end),) if end > start else ())
    sealed = sealed_days(first=first, last=last)
    rollup_days: list[tuple[date, date]] = []
    ledger_ranges: list[tuple[datetime, datetime]] = []

    def read_ledger(range_start: datetime, range_end: datetime) -> None:
        if range_end <= range_start:
            return
        if ledger_ranges and ledger_ranges[-1][1] == range_start:
            range_start = ledger_ranges.pop()[0]
        ledger_ranges.append((range_start, range_end))

    read_ledger(start, _midnight(first))
    day = first
    while day <= last:
        if day in sealed:
            if rollup_days and rollup_days[-1][1] == day - timedelta(days=1):
                rollup_days[-1] = (rollup_days[-1][0], day)
            else:
                rollup_days.append((day, day))
        else:
            read_ledger(_midnight(day), _midnight(day + timedelta(days=1)))
        day += timedelta(days=1)
    read_ledger(_midnight(last + timedelta(days=1)), end)
    return UsageSources(rollup_days=tuple(rollup_days), ledger_ranges=tuple(ledger_ranges))


def usage_rows_sql(
    *,
    org_id: str,
    sources: UsageSources,
    user_pk: int | None = None,
    username: str | None = None,
    model: str | None = None,
) -> tuple[str, list[Any]]:
    """A subquery (SQL, params) of the organization's usage over ``sources``, one row per
    (UTC day, user, model) and source, optionally of one user (by pk or by username) and model."""
    parts: list[str] = []
    params: list[Any] = []

    def where(table_alias: str, model_column: str, ranges_sql: str, range_params: list[Any]) -> str:
        clauses = [f"{table_alias}.org_id = %s", f"({ranges_sql})"]
        params.append(org_id)
        params.extend(range_params)
        if user_pk is not None:
            clauses.append(f"{table_alias}.user_id = %s")
            params.append(user_pk)
        elif username is not None:
            # An unknown username is NULL here, so it matches nothing.
            clauses.append(f"{table_alias}.user_id = (SELECT id FROM {_USERS} WHERE username = %s)")
            params.append(username)
        if model is not None:
            clauses.append(f"{table_alias}.{model_column} = %s")
            params.append(model)
        return " AND ".join(clauses)

    if sources.rollup_days:
        ranges = " OR ".join("r.day BETWEEN %s AND %s" for _ in sources.rollup_days)
        flat = [day for run in sources.rollup_days for day in run]
        parts.append(
            "SELECT r.day, r.user_id, r.model, r.requests, r.input_tokens, r.output_tokens, "
            + ", ".join(f"r.{name}" for name in _BREAKDOWN)
            + f", r.credits_used FROM {_ROLLUP} r WHERE {where('r', 'model', ranges, flat)}"
        )
    if sources.ledger_ranges:
        ranges = " OR ".join("(a.created_at >= %s AND a.created_at < %s)" for _ in sources.ledger_ranges)
        flat_times = [moment for pair in sources.ledger_ranges for moment in pair]
        parts.append(
            "SELECT (a.created_at AT TIME ZONE 'UTC')::date AS day, a.user_id, a.service_name AS model, "
            "COUNT(*) AS requests, SUM(a.input_tokens) AS input_tokens, "
            "SUM(a.output_tokens) AS output_tokens, "
            + "".join(f"SUM(a.{name}) AS {name}, " for name in _BREAKDOWN)
            + "SUM(a.credits_used) AS credits_used "
            f"FROM {_LEDGER} a WHERE {where('a', 'service_name', ranges, flat_times)} "
            "GROUP BY 1, 2, 3"
        )
    if not parts:
        return (
            "SELECT NULL::date AS day, NULL::bigint AS user_id, NULL::varchar AS model, "
            "0::bigint AS requests, 0::bigint AS input_tokens, 0::bigint AS output_tokens, "
            + "".join(f"0::bigint AS {name}, " for name in _BREAKDOWN)
            + "0::bigint AS credits_used WHERE false",
            [],
        )
    return " UNION ALL ".join(parts), params
