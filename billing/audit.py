"""Appending audit events. Called by services inside their own transaction. Each event keeps
the id of the request that wrote it (``X-Request-Id``; empty outside a request)."""

from typing import Any

from billing.models import AuditEvent
from organizations.models import User
from orgbilling.observability.request_id import current_request_id


def record_audit_event(
    *,
    action: str,
    actor: User | None = None,
    actor_label: str = "",
    org_id: str | None = None,
    target_type: str = "",
    target_id: str | int = "",
    metadata: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=actor_label or ("" if actor else "system"),
        org_id=org_id,
        target_type=target_type,
        target_id=str(target_id),
        metadata=metadata or {},
        ip_address=ip_address,
        request_id=current_request_id() or "",
    )
