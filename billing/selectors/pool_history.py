"""A pool's history by UTC day: its total and its used credits at the end of each day.

Both come from what reconciliation checks them against, so the chart can never show a figure
the ledger would call drift: the total is the signed sum of the credits added (purchases and
grants) less those a refund or an expired grant took back (``org_billing_history``), and the
used credits are the pool's present figure less the usage of the days after (the daily usage
the dashboard already holds). Allocations are not drawn: the ledger keeps no history of a
pool's allocated figure.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.db.models import Case, F, IntegerField, Sum, When
from django.db.models.functions import TruncDate

from billing.models import OrgBillingHistory

_CREDIT_EVENTS = (
    OrgBillingHistory.EventType.CREDIT_PURCHASE,
    OrgBillingHistory.EventType.CREDIT_GRANT,
    OrgBillingHistory.EventType.REFUND,
    OrgBillingHistory.EventType.CREDIT_EXPIRY,
)
_SIGNED = Case(
    When(event_type=OrgBillingHistory.EventType.REFUND, then=-F("credits")),
    When(event_type=OrgBillingHistory.EventType.CREDIT_EXPIRY, then=-F("credits")),
    default=F("credits"),
    output_field=IntegerField(),
)


@dataclass(frozen=True)
class PoolDay:
    day: date
    total_credits: int  # millicredits in the pool at the end of the day
    used_credits: int  # millicredits used from it by the end of the day


def pool_history(*, org_id: str, used_credits: int, daily_used: list[tuple[date, int]]) -> list[PoolDay]:
    """One entry per day of ``daily_used`` (consecutive UTC days, the last one today, with the
    credits used on each), given the pool's ``used_credits`` now: two queries, whatever the
    number of days or rows."""
    if not daily_used:
        return []
    first_day = daily_used[0][0]
    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    rows = OrgBillingHistory.objects.filter(
        org_id=org_id, event_type__in=_CREDIT_EVENTS, credits__isnull=False
    )
    before = rows.filter(occurred_at__lt=start).aggregate(total=Sum(_SIGNED))["total"] or 0
    added = dict(
        rows.filter(occurred_at__gte=start)
        .annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .values("day")
        .annotate(total=Sum(_SIGNED))
        .values_list("day", "total")
    )
    history = []
    total = before
    used_after = sum(used for _, used in daily_used)
    for day, used_that_day in daily_used:
        total += added.get(day, 0)
        used_after -= used_that_day
        history.append(PoolDay(day=day, total_credits=total, used_credits=used_credits - used_after))
    return history
