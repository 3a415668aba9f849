"""What the system page shows beside the dashboard: plans with their live subscriptions and
monthly revenue, the latest reconciliation runs and drifts, failed webhooks and the top users.
Each is one query whatever the number of organizations, users or rows."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce

from billing.models import (
    AuditEvent,
    CreditUsageAttribution,
    Plan,
    ReconciliationRun,
    WebhookEvent,
)

LIVE = ("pending", "active")
RUN_LIMIT = 10
WEBHOOK_LIMIT = 20
TOP_USERS_LIMIT = 10
DRIFT_ACTION = "ledger.drift_detected"


@dataclass(frozen=True)
class PlanLine:
    plan_code: str
    name: str
    monthly_price: Decimal
    currency: str
    is_active: bool
    live_subscriptions: int
    monthly_revenue: Decimal


def plans_with_revenue() -> list[PlanLine]:
    """Every plan with its live (pending or active) subscriptions and what they bring a month."""
    live = Q(subscriptions__status__in=LIVE)
    rows = (
        Plan.objects.annotate(live_subscriptions=Count("subscriptions", filter=live))
        .values("plan_code", "name", "monthly_price", "currency", "is_active", "live_subscriptions")
        .order_by("monthly_price", "plan_code")
    )
    return [PlanLine(**row, monthly_revenue=row["monthly_price"] * row["live_subscriptions"]) for row in rows]


def latest_reconciliation_runs(limit: int = RUN_LIMIT) -> list[ReconciliationRun]:
    return list(ReconciliationRun.objects.order_by("-finished_at", "-id")[:limit])


def latest_drifts() -> tuple[datetime | None, list[dict[str, Any]], int]:
    """The drifts of the last reconciliation that found any (as its audit event recorded them,
    at most 100): when, the drifts, and how many there were in all."""
    event = AuditEvent.objects.filter(action=DRIFT_ACTION).order_by("-created_at", "-id").first()
    if event is None:
        return None, [], 0
    drifts = event.metadata.get("drifts", [])
    return event.created_at, drifts, int(event.metadata.get("count", len(drifts)))


def failed_webhooks(limit: int = WEBHOOK_LIMIT) -> tuple[int, list[WebhookEvent]]:
    """How many webhooks failed, and the latest of them."""
    failed = WebhookEvent.objects.filter(status="failed")
    rows = list(failed.defer("payload").order_by("-received_at", "-id")[:limit])
    total = len(rows) if len(rows) < limit else failed.count()
    return total, rows


@dataclass(frozen=True)
class UserUsageRank:
    user_id: str
    credits_used: int
    requests: int


def top_users(*, since: datetime, until: datetime, limit: int = TOP_USERS_LIMIT) -> list[UserUsageRank]:
    """Users by credits used in the period, across organizations and individual credits."""
    rows = (
        CreditUsageAttribution.objects.filter(created_at__gte=since, created_at__lt=until)
        .order_by()
        .values(username=F("user__username"))
        .annotate(
            credits_used=Coalesce(Sum("credits_used"), 0),
            requests=Count("id"),
        )
        .order_by("-credits_used", "username")[:limit]
    )
    return [
        UserUsageRank(user_id=row["username"], credits_used=row["credits_used"], requests=row["requests"])
        for row in rows
    ]
