"""An organization's usage alerts and audit log, as its admins read them in the portal."""

from dataclasses import dataclass

from django.db.models import QuerySet

from billing.models import AuditEvent, UsageAlert

AUDIT_PAGE_SIZE = 50
ALERT_LIMIT = 20


def org_usage_alerts(*, org_id: str, limit: int = ALERT_LIMIT) -> list[UsageAlert]:
    """The org's latest usage alerts (pool and allocations), firing ones first."""
    return list(
        UsageAlert.objects.select_related("allocation__user")
        .filter(org_id=org_id)
        .order_by("status", "-last_fired_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    total: int
    page: int
    pages: int


def org_audit_events(*, org_id: str, action: str = "", actor: str = "", page: int = 1) -> AuditPage:
    """One page of the org's audit events, newest first; ``action`` keeps the actions starting
    with it (``member.`` → every member event), ``actor`` the events by that user id or label."""
    events: QuerySet[AuditEvent] = AuditEvent.objects.filter(org_id=org_id)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor__username=actor) | events.filter(actor_label=actor)
    total = events.count()
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    page = min(max(page, 1), pages)
    start = (page - 1) * AUDIT_PAGE_SIZE
    rows = list(
        events.select_related("actor").order_by("-created_at", "-id")[start : start + AUDIT_PAGE_SIZE]
    )
    return AuditPage(events=rows, total=total, page=page, pages=pages)
