"""Admin of plans (editable) and subscriptions (read-only)."""

from django.contrib import admin

from billing.admin.base import ReadOnlyAdmin
from billing.models import OrganizationSubscription, Plan


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "plan_code",
        "name",
        "monthly_price",
        "currency",
        "rate_limit_tier",
        "monthly_api_calls",
        "is_active",
    )
    list_filter = ("is_active", "rate_limit_tier")
    search_fields = ("plan_code", "name")


@admin.register(OrganizationSubscription)
class OrganizationSubscriptionAdmin(ReadOnlyAdmin):
    """Read-only: subscriptions change through the subscription services so the billing
    backend (Lago) stays in step."""

    list_display = (
        "id",
        "org",
        "plan",
        "status",
        "current_period_start",
        "current_period_end",
        "canceled_at",
        "created_at",
    )
    list_filter = ("status", "plan")
    list_select_related = ("org", "plan")
    search_fields = ("=org__id", "org__org_name", "=lago_subscription_id", "=lago_external_id")
    date_hierarchy = "created_at"
