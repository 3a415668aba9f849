"""Admin of the audit trail: read-only."""

from django.contrib import admin

from billing.admin.base import LedgerAdmin
from billing.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(LedgerAdmin):
    list_display = ("created_at", "action", "actor_name", "org", "target_type", "target_id", "ip_address")
    list_filter = ("action", "target_type")
    list_select_related = ("actor", "org")
    search_fields = ("action", "=org__id", "actor__username", "actor_label", "=target_id", "=request_id")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "action",
        "actor",
        "actor_label",
        "org",
        "target_type",
        "target_id",
        "metadata",
        "ip_address",
        "request_id",
    )
    readonly_fields = fields

    @admin.display(description="Actor", ordering="actor__username")
    def actor_name(self, event: AuditEvent) -> str:
        if event.actor is None:
            return event.actor_label
        return f"{event.actor} ({event.actor_label})" if event.actor_label else str(event.actor)
