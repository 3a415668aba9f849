"""Admin of received webhooks: read-only."""

from django.contrib import admin

from billing.admin.base import LedgerAdmin
from billing.models import WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(LedgerAdmin):
    """Every verified webhook as received. ``failed`` ones say why (and are processed again when
    the provider redelivers them); ``refund_review`` purchases are in Credit purchases."""

    list_display = ("received_at", "provider", "event_type", "event_id", "status", "attempts", "processed_at")
    list_filter = ("provider", "status", "event_type")
    search_fields = ("=event_id", "event_type")
    date_hierarchy = "received_at"
    fields = (
        "provider",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "error",
        "received_at",
        "processed_at",
        "payload",
    )
    readonly_fields = fields
