"""Admin of the rows the periodic tasks keep (daily usage rollups and their freshness markers,
usage alerts): read-only, they are derived from the ledger and written only by
``billing.services``."""

from django.contrib import admin

from billing.admin.base import LedgerAdmin, ReadOnlyAdmin, credits_display
from billing.models import UsageAlert, UsageDailyRollup, UsageRollupDay


@admin.register(UsageDailyRollup)
class UsageDailyRollupAdmin(LedgerAdmin):
    credits = credits_display("credits_used", "Credits used")

    list_display = ("day", "org", "user", "model", "requests", "input_tokens", "output_tokens", "credits")
    list_filter = ("day",)
    list_select_related = ("org", "user")
    search_fields = ("=org__id", "user__username", "model")
    date_hierarchy = "day"
    fields = (
        "day",
        "org",
        "user",
        "model",
        "requests",
        "input_tokens",
        "output_tokens",
        "credits",
        "computed_at",
    )
    readonly_fields = fields


@admin.register(UsageAlert)
class UsageAlertAdmin(ReadOnlyAdmin):
    used = credits_display("used_credits", "Used (credits)")
    capacity = credits_display("capacity_credits", "Of (credits)")

    list_display = (
        "org",
        "scope",
        "allocation",
        "threshold",
        "period_start",
        "status",
        "used",
        "capacity",
        "times_fired",
        "last_fired_at",
        "resolved_at",
    )
    list_filter = ("status", "scope", "threshold", "period_start")
    list_select_related = ("org", "allocation__user")
    search_fields = ("=org__id", "allocation__user__username")
    date_hierarchy = "last_fired_at"
    fields = (
        "org",
        "scope",
        "allocation",
        "threshold",
        "period_start",
        "status",
        "used",
        "capacity",
        "times_fired",
        "first_fired_at",
        "last_fired_at",
        "resolved_at",
    )
    readonly_fields = fields


@admin.register(UsageRollupDay)
class UsageRollupDayAdmin(ReadOnlyAdmin):
    """When each day was last rolled up by a complete pass: a day is read from the rollup once a
    pass started an hour after it ended (``billing.selectors.usage_sources``)."""

    list_display = ("day", "computed_at")
    date_hierarchy = "day"
    fields = ("day", "computed_at")
    readonly_fields = fields
