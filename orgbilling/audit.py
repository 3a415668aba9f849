"""Appending audit events from any layer. ``organizations`` (the lower layer) records its
membership, key and sign-in events here; the ``AuditEvent`` model and the writer live in
``billing.audit``, which registers itself as the recorder when the billing app is ready.

Fail closed: with no recorder registered an audited write raises instead of going unaudited
(the caller's transaction rolls back). Called inside the caller's transaction, like before.
"""

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

AuditRecorder = Callable[..., Any]

_recorder: AuditRecorder | None = None


def register_audit_recorder(recorder: AuditRecorder) -> None:
    """Install the function that writes an audit event (``billing.audit.record_audit_event``)."""
    global _recorder
    _recorder = recorder


def record_audit_event(
    *,
    action: str,
    actor: Any = None,
    actor_label: str = "",
    org_id: str | None = None,
    target_type: str = "",
    target_id: str | int = "",
    metadata: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> Any:
    """Append one audit event (the recorder's ``AuditEvent`` row) in the current transaction."""
    if _recorder is None:
        raise ImproperlyConfigured("No audit recorder is registered (is the billing app installed?)")
    return _recorder(
        action=action,
        actor=actor,
        actor_label=actor_label,
        org_id=org_id,
        target_type=target_type,
        target_id=target_id,
        metadata=metadata,
        ip_address=ip_address,
    )
