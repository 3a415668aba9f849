"""Rolling the attribution ledger up into ``UsageDailyRollup`` rows, per UTC day.

Recomputation, not accumulation: a pass deletes the rows of the days it covers and inserts a
fresh aggregate of those days, in one transaction per batch of organizations (plus one for
individual credits). Running it twice, or twice at once, leaves the same rows: concurrent
passes are serialized on a transaction-level advisory lock. Every query is keyed by org (or
``org_id IS NULL``) and a time range, so it runs on the ledger's ``(org, created_at)`` index.

The last transaction of a pass also stamps each day it covered in ``UsageRollupDay`` with the
pass's start: the analytics (``billing.selectors.usage_sources``) trust a day's rollup rows only
once a pass that started ``SEAL_AFTER`` past the day's end has completed over it, and read any
other day from the ledger, so a missing or early rollup never answers zero.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from organizations.models import Organization

BATCH_SIZE = 500
# One key for every rollup pass (pg_advisory_xact_lock takes a bigint).
_ROLLUP_LOCK_KEY = 0x6F72_6762_726F_6C6C  # "orgbroll"

_BREAKDOWN = (
    "cached_tokens",
    "cache_write_tokens",
    "audio_input_tokens",
    "reasoning_tokens",
    "audio_output_tokens",
)
_COLUMNS = (
    "org_id, user_id, model, day, requests, input_tokens, output_tokens, "
    + ", ".join(_BREAKDOWN)
    + ", credits_used, computed_at"
)
_AGGREGATE = f"""
    INSERT INTO usage_daily_rollups ({_COLUMNS})
    SELECT org_id, user_id, service_name, (created_at AT TIME ZONE 'UTC')::date,
           COUNT(*), SUM(input_tokens), SUM(output_tokens),
           {", ".join(f"SUM({name})" for name in _BREAKDOWN)}, SUM(credits_used), %(now)s
    FROM credit_usage_attribution
    WHERE {{scope}} AND created_at >= %(start)s AND created_at < %(end)s
    GROUP BY org_id, user_id, service_name, (created_at AT TIME ZONE 'UTC')::date
"""
_DELETE = "DELETE FROM usage_daily_rollups WHERE {scope} AND day >= %(first)s AND day <= %(last)s"
# GREATEST: a pass that finishes after a later-started one must not move the marker back.
_MARK_DAYS = """
    INSERT INTO usage_rollup_days (day, computed_at)
    SELECT generate_series(%(first)s::date, %(last)s::date, interval '1 day')::date, %(now)s
    ON CONFLICT (day) DO UPDATE
    SET computed_at = GREATEST(usage_rollup_days.computed_at, EXCLUDED.computed_at)
"""
_ORG_SCOPE = "org_id = ANY(%(orgs)s)"
_INDIVIDUAL_SCOPE = "org_id IS NULL"


@dataclass(frozen=True)
class RollupBatch:
    """One transaction's work: ``organizations`` orgs (0 = individual credits), ``rows`` written."""

    organizations: int
    rows: int


def default_days(now: datetime | None = None) -> tuple[date, date]:
    """Yesterday and today (UTC): a charge committed just after midnight still lands in its day."""
    today = (now or timezone.now()).astimezone(UTC).date()
    return today - timedelta(days=1), today


def rollup_batch_count(batch_size: int = BATCH_SIZE) -> int:
    """How many transactions a pass takes (organization batches + individual credits)."""
    orgs = Organization.objects.count()
    return -(-orgs // batch_size) + 1


def _recompute(scope: str, params: dict[str, Any], *, mark_days: bool = False) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ROLLUP_LOCK_KEY])
        cursor.execute(_DELETE.format(scope=scope), params)
        cursor.execute(_AGGREGATE.format(scope=scope), params)
        rows = max(cursor.rowcount, 0)
        if mark_days:
            cursor.execute(_MARK_DAYS, params)
        return rows


def _batched(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def iter_rollup_usage(
    *, first_day: date, last_day: date, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> Iterator[RollupBatch]:
    """Recompute the rollups of ``first_day``..``last_day`` (UTC, inclusive), yielding after each
    transaction (for progress bars)."""
    if last_day < first_day:
        raise ValueError("last_day is before first_day")
    params: dict[str, Any] = {
        "first": first_day,
        "last": last_day,
        "start": datetime.combine(first_day, time.min, tzinfo=UTC),
        "end": datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=UTC),
        "now": now or timezone.now(),
    }
    org_ids = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    for batch in _batched(org_ids, batch_size):
        rows = _recompute(_ORG_SCOPE, {**params, "orgs": list(batch)})
        yield RollupBatch(organizations=len(batch), rows=rows)
    # Last, and with the days' marker: a pass that stops half-way vouches for nothing.
    yield RollupBatch(organizations=0, rows=_recompute(_INDIVIDUAL_SCOPE, params, mark_days=True))


def rollup_usage(
    *, first_day: date | None = None, last_day: date | None = None, now: datetime | None = None
) -> int:
    """Recompute the daily rollups of a range of UTC days (default: yesterday and today);
    return the number of rollup rows written."""
    default_first, default_last = default_days(now)
    return sum(
        batch.rows
        for batch in iter_rollup_usage(
            first_day=first_day or default_first, last_day=last_day or default_last, now=now
        )
    )
