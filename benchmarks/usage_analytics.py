"""Usage analytics benchmark: an org with a million attribution rows, answered from the daily
rollup (sealed past days) versus from the ledger alone.

Against a migrated database of your own (it adds one organization, its members and their rows
under a random run tag, and leaves them)::

    DATABASE_URL=postgres://... DJANGO_SETTINGS_MODULE=orgbilling.settings.dev \\
        .venv/bin/python benchmarks/usage_analytics.py --rows 1000000 --days 365

What it does
------------
* Creates one organization with ``--users`` members through the services, then writes
  ``--rows`` attribution rows spread evenly over the last ``--days`` days (today included)
  with one ``INSERT ... SELECT generate_series`` (a benchmark fixture, not a ledger write path:
  no balance moves with them) and ``ANALYZE``.
* Rolls the days up with ``billing.services.rollups.rollup_usage`` and times it.
* Times, ``--repeat`` times each (median), ``usage_summary`` (totals, top models, top users,
  daily series) and one page of ``usage_series`` by user for the last 30 and the last
  ``--days`` days: once as served (sealed days from ``usage_daily_rollups``, today from the
  ledger) and once from the ledger alone (the same figures grouped over
  ``credit_usage_attribution``, as the analytics were computed before), and checks both
  answers are equal.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgbilling.settings.dev")
os.environ.setdefault("DJANGO_DEBUG", "false")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.db.models import Count, DateField, F, Sum  # noqa: E402
from django.db.models.functions import Coalesce, Trunc  # noqa: E402
from django.utils import timezone  # noqa: E402

from billing.models import UserCreditAllocation  # noqa: E402
from billing.selectors.usage import UsageFilters, attribution_rows, usage_series, usage_summary  # noqa: E402
from billing.services import add_credits_to_pool, allocate_credits_to_user  # noqa: E402
from billing.services.rollups import rollup_usage  # noqa: E402
from organizations.services import add_member, create_organization, ensure_user  # noqa: E402

MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3-70b"]


def build(rows: int, days: int, users: int, tag: str) -> str:
    org_id = f"bench-usage-{tag}"
    owner = ensure_user(username=f"{org_id}-owner", email=f"{org_id}-owner@example.com")
    create_organization(org_id=org_id, org_name=f"Usage benchmark {tag}", created_by=owner)
    add_credits_to_pool(org_id=org_id, amount=10**12, actor_label="benchmark")
    for n in range(users):
        member = ensure_user(username=f"{org_id}-u{n}", email=f"{org_id}-u{n}@example.com")
        add_member(org_id=org_id, user=member, actor_label="benchmark")
        allocate_credits_to_user(org_id=org_id, user=member, amount=10**9, actor_label="benchmark")
    allocations = list(UserCreditAllocation.objects.filter(org_id=org_id).values_list("user_id", "pk"))
    first = datetime.combine(timezone.now().astimezone(UTC).date() - timedelta(days=days - 1), dtime.min, UTC)
    span = timezone.now() - first
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO credit_usage_attribution
                (org_id, user_id, allocation_id, service_type, service_name, input_tokens,
                 output_tokens, credits_used, balance_after, request_id, request_metadata, created_at)
            SELECT %(org)s, (%(users)s::bigint[])[1 + g %% %(n)s], (%(allocs)s::bigint[])[1 + g %% %(n)s],
                   'llm', (%(models)s::text[])[1 + (g / 7) %% 4], g %% 2000, g %% 700, 1 + g %% 5000, 0,
                   'bench-' || g, '{}'::jsonb, %(first)s + (g::float8 / %(rows)s) * %(span)s
            FROM generate_series(0, %(rows)s - 1) g
            """,
            {
                "org": org_id,
                "users": [u for u, _ in allocations],
                "allocs": [a for _, a in allocations],
                "n": len(allocations),
                "models": MODELS,
                "first": first,
                "rows": rows,
                "span": span,
            },
        )
        cursor.execute("ANALYZE credit_usage_attribution")
    return org_id


def _sums() -> dict[str, Any]:
    return {
        "requests": Count("id"),
        "input_tokens": Coalesce(Sum("input_tokens"), 0),
        "output_tokens": Coalesce(Sum("output_tokens"), 0),
        "credits_used": Coalesce(Sum("credits_used"), 0),
    }


def ledger_summary(org_id: str, filters: UsageFilters) -> tuple[Any, ...]:
    rows = attribution_rows(org_id=org_id, filters=filters)
    day = Trunc("created_at", "day", output_field=DateField(), tzinfo=UTC)
    totals = rows.aggregate(**_sums(), users=Count("user_id", distinct=True))
    models = list(
        rows.values("service_name").annotate(**_sums()).order_by("-credits_used", "service_name")[:50]
    )
    users = list(
        rows.values(username=F("user__username"))
        .annotate(**_sums())
        .order_by("-credits_used", "username")[:50]
    )
    series = list(rows.values(period_start=day).annotate(**_sums()).order_by("-period_start")[:400])
    return (
        (totals["credits_used"], totals["requests"], totals["users"]),
        [(m["service_name"], m["credits_used"]) for m in models],
        [(u["username"], u["credits_used"]) for u in users],
        sorted((s["period_start"], s["credits_used"]) for s in series),
    )


def served_summary(org_id: str, filters: UsageFilters) -> tuple[Any, ...]:
    s = usage_summary(org_id=org_id, filters=filters)
    return (
        (s.totals.credits_used, s.totals.requests, s.totals.user_count),
        [(m.model, m.credits_used) for m in s.by_model],
        [(u.user_id, u.credits_used) for u in s.by_user],
        [(b.period_start, b.credits_used) for b in s.series],
    )


def ledger_page(org_id: str, filters: UsageFilters) -> list[tuple[Any, ...]]:
    day = Trunc("created_at", "day", output_field=DateField(), tzinfo=UTC)
    rows = (
        attribution_rows(org_id=org_id, filters=filters)
        .values(period_start=day, key=F("user__username"))
        .annotate(**_sums())
        .order_by("period_start", "key")
    )
    return [(r["period_start"], r["key"], r["credits_used"]) for r in rows[:50]] + [(rows.count(),)]


def served_page(org_id: str, filters: UsageFilters) -> list[tuple[Any, ...]]:
    rows = usage_series(org_id=org_id, filters=filters, granularity="day", group_by="user")
    return [(r["period_start"], r["key"], r["credits_used"]) for r in rows[0:50]] + [(rows.count(),)]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    results, durations = None, []
    for _ in range(repeat):
        started = time.perf_counter()
        results = fn()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations) * 1000, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tag = secrets.token_hex(4)

    started = time.perf_counter()
    org_id = build(args.rows, args.days, args.users, tag)
    print(
        f"built {args.rows:,} attribution rows over {args.days} days in {time.perf_counter() - started:.1f} s"
    )
    today = timezone.now().astimezone(UTC).date()
    started = time.perf_counter()
    written = rollup_usage(first_day=today - timedelta(days=args.days - 1), last_day=today)
    elapsed = time.perf_counter() - started
    print(f"rollup_usage over {args.days} days: {written:,} rollup rows in {elapsed:.1f} s")

    failed = False
    end = timezone.now() + timedelta(seconds=1)
    for span in (30, args.days):
        filters = UsageFilters(start=end - timedelta(days=span), end=end)
        for name, served, ledger in (
            ("usage_summary", served_summary, ledger_summary),
            ("usage_series page", served_page, ledger_page),
        ):
            served_ms, served_answer = timed(lambda s=served, f=filters: s(org_id, f), args.repeat)
            ledger_ms, ledger_answer = timed(lambda s=ledger, f=filters: s(org_id, f), args.repeat)
            same = served_answer == ledger_answer
            failed |= not same
            print(
                f"{name:18} last {span:>3} days: served {served_ms:8.1f} ms, "
                f"ledger alone {ledger_ms:8.1f} ms (x{ledger_ms / served_ms:.0f}), answers equal: {same}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
