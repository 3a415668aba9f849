"""The usage analytics read sealed past days from ``UsageDailyRollup`` and the rest from the
ledger, and answer exactly what the ledger alone answers."""

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.db.models import Count, DateField, F, Sum
from django.db.models.functions import Coalesce, Trunc
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import UsageDailyRollup, UsageRollupDay
from billing.models.usage import SEAL_AFTER
from billing.selectors.dashboards import daily_usage
from billing.selectors.usage import (
    UsageFilters,
    attribution_rows,
    usage_buckets,
    usage_by_model,
    usage_by_user,
    usage_series,
    usage_totals,
)
from billing.selectors.usage_sources import usage_sources
from billing.services import deduct_credits
from billing.services.rollups import iter_rollup_usage, rollup_usage
from organizations.services import add_member
from tests.factories import UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db

FIRST_DAY = date(2025, 3, 1)
LAST_DAY = date(2025, 3, 10)
MODELS = ["gpt-4o", "claude", "", "=cmd"]


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def days(first: date, last: date) -> Iterator[date]:
    while first <= last:
        yield first
        first += timedelta(days=1)


def charge(
    user: Any, org_id: str, millicredits: int, at: datetime, model: str, tokens: tuple[int, int]
) -> None:
    with time_machine.travel(at, tick=False):
        deduct_credits(
            user=user,
            org_id=org_id,
            amount=millicredits,
            request_id=f"req-{at.isoformat()}-{user.pk}-{random.random()}",
            service_name=model,
            input_tokens=tokens[0],
            output_tokens=tokens[1],
        )


def seeded_charges(rng: random.Random, users: list[Any], org_id: str, day: date, count: int) -> None:
    for n in range(count):
        # Each day's edges (its first and last microsecond) as well as anywhere in it.
        offset = rng.choice(
            [timedelta(0), timedelta(days=1, microseconds=-1), timedelta(seconds=rng.randrange(86_400))]
        )
        charge(
            rng.choice(users),
            org_id,
            rng.randrange(1, 5_000),
            midnight(day) + offset + timedelta(microseconds=n),
            rng.choice(MODELS),
            (rng.randrange(0, 2_000), rng.randrange(0, 2_000)),
        )


@pytest.fixture
def history(make_funded_member):
    """Ten days of usage by three members over four models (and another org's usage beside it).

    One rollup pass ran on 8 March at 02:00: 1-7 March are sealed; 8-10 March were rolled up
    too early and got more usage afterwards; 5 March's rollup and marker were then lost."""
    org, alice, _ = make_funded_member(pool=100_000, allocation=20_000)
    _, bob, _ = make_funded_member(org=org, pool=0, allocation=20_000)
    _, carol, _ = make_funded_member(org=org, pool=0, allocation=20_000)
    other_org, dave, _ = make_funded_member(pool=100_000, allocation=20_000)
    rng = random.Random(20250301)
    for day in days(FIRST_DAY, LAST_DAY):
        if day != date(2025, 3, 4):  # a day without usage
            seeded_charges(rng, [alice, bob, carol], org.id, day, rng.randrange(1, 7))
        seeded_charges(rng, [dave], other_org.id, day, 1)
    rollup_usage(first_day=FIRST_DAY, last_day=LAST_DAY, now=datetime(2025, 3, 8, 2, tzinfo=UTC))
    for day in days(date(2025, 3, 8), LAST_DAY):
        seeded_charges(rng, [alice, bob, carol], org.id, day, 2)
    UsageDailyRollup.objects.filter(day=date(2025, 3, 5)).delete()
    UsageRollupDay.objects.filter(day=date(2025, 3, 5)).delete()
    return org, [alice, bob, carol]


# --- the ledger alone: the analytics as they were before the rollup was read -----------------


def _sums() -> dict[str, Any]:
    return {
        "requests": Count("id"),
        "input_tokens": Coalesce(Sum("input_tokens"), 0),
        "output_tokens": Coalesce(Sum("output_tokens"), 0),
        "credits_used": Coalesce(Sum("credits_used"), 0),
    }


def ledger_answers(org_id: str, filters: UsageFilters, granularity: str) -> dict[str, Any]:
    rows = attribution_rows(org_id=org_id, filters=filters)
    bucket = Trunc("created_at", granularity, output_field=DateField(), tzinfo=UTC)
    totals = rows.aggregate(
        **_sums(),
        user_count=Count("user_id", distinct=True),
        model_count=Count("service_name", distinct=True),
    )
    return {
        "totals": tuple(
            totals[k]
            for k in (
                "credits_used",
                "requests",
                "input_tokens",
                "output_tokens",
                "user_count",
                "model_count",
            )
        ),
        "by_model": [
            (r["service_name"], r["requests"], r["input_tokens"], r["output_tokens"], r["credits_used"])
            for r in rows.values("service_name")
            .annotate(**_sums())
            .order_by("-credits_used", "service_name")[:3]
        ],
        "by_user": [
            (r["username"], r["requests"], r["input_tokens"], r["output_tokens"], r["credits_used"])
            for r in rows.values(username=F("user__username"))
            .annotate(**_sums())
            .order_by("-credits_used", "username")[:2]
        ],
        "buckets": [
            (r["period_start"], r["requests"], r["input_tokens"], r["output_tokens"], r["credits_used"])
            for r in reversed(
                rows.values(period_start=bucket).annotate(**_sums()).order_by("-period_start")[:4]
            )
        ],
        "series_by_user": [
            (r["period_start"], r["key"], r["requests"], r["credits_used"])
            for r in rows.values(period_start=bucket, key=F("user__username"))
            .annotate(**_sums())
            .order_by("period_start", "key")
        ],
        "series_by_model": [
            (r["period_start"], r["key"], r["requests"], r["credits_used"])
            for r in rows.values(period_start=bucket, key=F("service_name"))
            .annotate(**_sums())
            .order_by("period_start", "key")
        ],
    }


def selector_answers(org_id: str, filters: UsageFilters, granularity: Any) -> dict[str, Any]:
    t = usage_totals(org_id=org_id, filters=filters)
    return {
        "totals": (t.credits_used, t.requests, t.input_tokens, t.output_tokens, t.user_count, t.model_count),
        "by_model": [
            (m.model, m.requests, m.input_tokens, m.output_tokens, m.credits_used)
            for m in usage_by_model(org_id=org_id, filters=filters, limit=3)
        ],
        "by_user": [
            (u.user_id, u.requests, u.input_tokens, u.output_tokens, u.credits_used)
            for u in usage_by_user(org_id=org_id, filters=filters, limit=2)
        ],
        "buckets": [
            (b.period_start, b.requests, b.input_tokens, b.output_tokens, b.credits_used)
            for b in usage_buckets(org_id=org_id, filters=filters, granularity=granularity, limit=4)
        ],
        "series_by_user": [
            (r["period_start"], r["key"], r["requests"], r["credits_used"])
            for r in usage_series(org_id=org_id, filters=filters, granularity=granularity, group_by="user")
        ],
        "series_by_model": [
            (r["period_start"], r["key"], r["requests"], r["credits_used"])
            for r in usage_series(org_id=org_id, filters=filters, granularity=granularity, group_by="model")
        ],
    }


# Moments from a day before the data to a day after it: whole hours, and exact midnights.
_moments = st.builds(
    lambda day, hour: midnight(FIRST_DAY - timedelta(days=1) + timedelta(days=day)) + timedelta(hours=hour),
    st.integers(0, 12),
    st.sampled_from([0, 0, 0, 1, 12, 23]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bounds=st.tuples(_moments, _moments).map(sorted),
    who=st.sampled_from(["everyone", "alice", "bob by pk", "nobody"]),
    model=st.sampled_from([None, "gpt-4o", "", "no-such-model"]),
    granularity=st.sampled_from(["day", "week", "month"]),
)
def test_rollup_backed_answers_equal_the_ledger_alone(history, bounds, who, model, granularity):
    org, (alice, bob, _) = history
    start, end = bounds
    filters = UsageFilters(
        start=start,
        end=end,
        username={"alice": alice.username, "nobody": "nobody"}.get(who),
        user_pk=bob.pk if who == "bob by pk" else None,
        model=model,
    )

    assert selector_answers(org.id, filters, granularity) == ledger_answers(org.id, filters, granularity)


def test_the_daily_dashboard_series_equals_the_ledger_alone(history):
    org, _ = history
    start, end = midnight(FIRST_DAY) + timedelta(hours=5), midnight(LAST_DAY) + timedelta(hours=20)
    ledger = {
        row["day"]: row["credits"]
        for row in attribution_rows(org_id=org.id, filters=UsageFilters(start=start, end=end))
        .values(day=Trunc("created_at", "day", output_field=DateField(), tzinfo=UTC))
        .annotate(credits=Sum("credits_used"))
    }

    series = daily_usage(org_id=org.id, start=start, end=end)

    assert [d.date for d in series] == list(days(FIRST_DAY, LAST_DAY))
    assert {d.date: d.credits_used for d in series if d.credits_used} == ledger


# --- which source answers --------------------------------------------------------------------


def test_sealed_whole_days_come_from_the_rollup_and_the_rest_from_the_ledger(history):
    # given the history's markers: 1-7 March sealed except the 5th
    start, end = (
        midnight(date(2025, 3, 2)) + timedelta(hours=6),
        midnight(date(2025, 3, 9)) + timedelta(hours=3),
    )

    sources = usage_sources(start=start, end=end)

    assert sources.rollup_days == ((date(2025, 3, 3), date(2025, 3, 4)), (date(2025, 3, 6), date(2025, 3, 7)))
    assert sources.ledger_ranges == (
        (start, midnight(date(2025, 3, 3))),  # the partial first day
        (midnight(date(2025, 3, 5)), midnight(date(2025, 3, 6))),  # lost rollup
        (midnight(date(2025, 3, 8)), end),  # rolled up too early, then the partial last day
    )


def test_a_period_of_sealed_days_never_reads_the_ledger(history):
    org, _ = history
    filters = UsageFilters(start=midnight(date(2025, 3, 1)), end=midnight(date(2025, 3, 5)))

    with CaptureQueriesContext(connection) as queries:
        usage_totals(org_id=org.id, filters=filters)
        usage_by_user(org_id=org.id, filters=filters)
        list(usage_series(org_id=org.id, filters=filters, granularity="day", group_by="model"))

    assert queries.captured_queries
    assert not [q["sql"] for q in queries.captured_queries if "credit_usage_attribution" in q["sql"]]


def test_the_api_answers_sealed_days_from_the_rollup(api_client, history):
    # given a sealed day's rollup that disagrees with the ledger (+7 credits), and an unsealed
    # day's rollup that disagrees too (+1000 credits): only the sealed one can show through
    org, (alice, *_) = history
    admin = UserFactory()
    add_member(org_id=org.id, user=admin, role="admin")
    query = {"start": "2025-03-02", "end": "2025-03-09"}
    api_client.force_login(admin)
    before = api_client.get(reverse("org-billing-credits-usage", args=[org.id]), query).json()
    sealed = UsageDailyRollup.objects.filter(org=org, day=date(2025, 3, 2)).first()
    stale = UsageDailyRollup.objects.filter(org=org, day=date(2025, 3, 9)).first()
    assert sealed is not None and stale is not None
    UsageDailyRollup.objects.filter(pk=sealed.pk).update(credits_used=F("credits_used") + mc(7))
    UsageDailyRollup.objects.filter(pk=stale.pk).update(credits_used=F("credits_used") + mc(1000))

    after = api_client.get(reverse("org-billing-credits-usage", args=[org.id]), query).json()

    assert after["total_credits_used"] == pytest.approx(before["total_credits_used"] + 7)
    assert after["total_requests"] == before["total_requests"]


def test_a_day_whose_rollup_is_missing_or_early_is_not_zero(history):
    org, _ = history
    for day in [date(2025, 3, 5), date(2025, 3, 9)]:  # lost; rolled up before more usage came
        filters = UsageFilters(start=midnight(day), end=midnight(day + timedelta(days=1)))
        ledger = attribution_rows(org_id=org.id, filters=filters).aggregate(total=Sum("credits_used"))[
            "total"
        ]
        assert ledger
        assert usage_totals(org_id=org.id, filters=filters).credits_used == ledger


# --- the freshness marker ------------------------------------------------------------------


def test_a_complete_pass_stamps_its_days_with_its_start(make_funded_member):
    started = datetime(2025, 3, 12, 4, tzinfo=UTC)

    rollup_usage(first_day=date(2025, 3, 10), last_day=date(2025, 3, 11), now=started)

    assert dict(UsageRollupDay.objects.values_list("day", "computed_at")) == {
        date(2025, 3, 10): started,
        date(2025, 3, 11): started,
    }
    sources = usage_sources(start=midnight(date(2025, 3, 10)), end=midnight(date(2025, 3, 12)))
    # the 11th ended four hours before the pass: sealed (SEAL_AFTER is an hour); so is the 10th
    assert timedelta(hours=4) >= SEAL_AFTER
    assert sources.rollup_days == ((date(2025, 3, 10), date(2025, 3, 11)),)


def test_a_pass_that_stops_half_way_vouches_for_nothing(make_funded_member):
    make_funded_member()  # an organization, so the pass has an org batch before the last one

    passes = iter_rollup_usage(
        first_day=date(2025, 3, 10), last_day=date(2025, 3, 10), now=datetime(2025, 3, 20, tzinfo=UTC)
    )
    next(passes)  # the organizations' batch, then the pass dies
    passes.close()

    assert not UsageRollupDay.objects.exists()


def test_a_pass_finishing_late_never_moves_the_marker_back(make_funded_member):
    later, earlier = datetime(2025, 3, 20, tzinfo=UTC), datetime(2025, 3, 11, 0, 30, tzinfo=UTC)
    rollup_usage(first_day=date(2025, 3, 10), last_day=date(2025, 3, 10), now=later)

    rollup_usage(first_day=date(2025, 3, 10), last_day=date(2025, 3, 10), now=earlier)

    assert UsageRollupDay.objects.get(day=date(2025, 3, 10)).computed_at == later


def test_a_pass_before_the_seal_leaves_the_day_to_the_ledger(make_funded_member):
    day = date(2025, 3, 10)
    rollup_usage(first_day=day, last_day=day, now=midnight(day + timedelta(days=1)) + SEAL_AFTER / 2)

    sources = usage_sources(start=midnight(day), end=midnight(day + timedelta(days=1)))

    assert sources.rollup_days == ()
    assert sources.ledger_ranges == ((midnight(day), midnight(day + timedelta(days=1))),)
