"""A person's own usage, across every organization that paid for it and their individual
credits: the portal's "my usage" chart. One grouped query on the ledger's ``(user, created_at)``
index, whatever the number of organizations, models or calls. Amounts are integer millicredits.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from billing.models import CreditUsageAttribution
from organizations.models import User

# A chart with more series than this is unreadable: the smallest models share one "other" series.
MAX_CHART_MODELS = 8
OTHER_MODELS = "other models"


@dataclass(frozen=True)
class ModelSeries:
    model: str
    credits_used: list[int]  # one per day of ``UsageChart.days``
    requests: int
    total_credits: int


@dataclass(frozen=True)
class UsageChart:
    """Daily usage by model over ``days`` (oldest first, the user's local days)."""

    days: list[date]
    series: list[ModelSeries]
    daily_totals: list[int]

    @property
    def total_credits(self) -> int:
        return sum(self.daily_totals)

    @property
    def total_requests(self) -> int:
        return sum(s.requests for s in self.series)


def usage_window(*, now: datetime, days: int, tz: tzinfo) -> tuple[datetime, datetime, list[date]]:
    """The last ``days`` local days, today included: [local midnight ``days - 1`` days ago, now)."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time.min).replace(tzinfo=tz)
    return start, now, [first + timedelta(days=n) for n in range(days)]


def my_usage_chart(*, user: User, now: datetime, days: int, tz: tzinfo) -> UsageChart:
    """The user's own charges (whoever paid) per local day and model."""
    start, end, day_list = usage_window(now=now, days=days, tz=tz)
    rows = (
        CreditUsageAttribution.objects.filter(user=user, created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day", "service_name")
        .annotate(credits=Sum("credits_used"), requests=Count("id"))
        .order_by()
    )
    index = {day: n for n, day in enumerate(day_list)}
    per_model: dict[str, list[int]] = {}
    requests: dict[str, int] = {}
    for row in rows:
        model = row["service_name"] or "unnamed"
        credits = per_model.setdefault(model, [0] * len(day_list))
        position = index.get(row["day"])
        if position is not None:
            credits[position] += int(row["credits"])
        requests[model] = requests.get(model, 0) + int(row["requests"])
    ranked = sorted(per_model, key=lambda m: (-sum(per_model[m]), m))
    shown, rest = ranked[:MAX_CHART_MODELS], ranked[MAX_CHART_MODELS:]
    series = [ModelSeries(m, per_model[m], requests[m], sum(per_model[m])) for m in shown]
    if rest:
        merged = [sum(per_model[m][n] for m in rest) for n in range(len(day_list))]
        series.append(ModelSeries(OTHER_MODELS, merged, sum(requests[m] for m in rest), sum(merged)))
    totals = [sum(s.credits_used[n] for s in series) for n in range(len(day_list))]
    return UsageChart(days=day_list, series=series, daily_totals=totals)
