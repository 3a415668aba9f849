"""Admin of the ledger (usage attributions, reservations, billing history): read-only."""

from django.contrib import admin

from billing.admin.base import LedgerAdmin, credits_display
from billing.models import CreditReservation, CreditUsageAttribution, OrgBillingHistory


@admin.register(CreditUsageAttribution)
class CreditUsageAttributionAdmin(LedgerAdmin):
    charged = credits_display("credits_used", "Credits used")
    balance = credits_display("balance_after", "Free after (credits)")

    list_display = (
        "created_at",
        "request_id",
        "org",
        "user",
        "service_type",
        "service_name",
        "input_tokens",
        "output_tokens",
        "charged",
        "balance",
    )
    list_filter = ("service_type",)
    list_select_related = ("org", "user")
    search_fields = ("=request_id", "=org__id", "service_name", "user__username")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "request_id",
        "org",
        "user",
        "allocation",
        "service_type",
        "service_name",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "audio_input_tokens",
        "reasoning_tokens",
        "audio_output_tokens",
        "charged",
        "balance",
        "request_metadata",
    )
    readonly_fields = fields


@admin.register(CreditReservation)
class CreditReservationAdmin(LedgerAdmin):
    held = credits_display("amount", "Held (credits)")
    charged = credits_display("credits_charged", "Charged (credits)")

    list_display = (
        "id",
        "created_at",
        "request_id",
        "org",
        "user",
        "held",
        "charged",
        "status",
        "expires_at",
        "finished_at",
    )
    list_filter = ("status",)
    list_select_related = ("org", "user")
    search_fields = ("=request_id", "=org__id", "user__username")
    date_hierarchy = "created_at"
    fields = (
        "request_id",
        "org",
        "user",
        "allocation",
        "held",
        "charged",
        "status",
        "attribution",
        "expires_at",
        "created_at",
        "finished_at",
    )
    readonly_fields = fields


@admin.register(OrgBillingHistory)
class OrgBillingHistoryAdmin(LedgerAdmin):
    credits_column = credits_display("credits", "Credits")

    list_display = (
        "occurred_at",
        "org",
        "event_type",
        "external_id",
        "amount",
        "currency",
        "credits_column",
        "status",
        "description",
    )
    list_filter = ("event_type", "status", "currency")
    list_select_related = ("org",)
    search_fields = ("=external_id", "=org__id", "org__org_name", "description")
    date_hierarchy = "occurred_at"
    fields = (
        "org",
        "event_type",
        "external_id",
        "amount",
        "currency",
        "credits_column",
        "status",
        "description",
        "metadata",
        "occurred_at",
        "created_at",
    )
    readonly_fields = fields
