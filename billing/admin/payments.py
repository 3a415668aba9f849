"""Admin of credit purchases and auto top-up settings: read-only."""

from django.contrib import admin

from billing.admin.base import ReadOnlyAdmin, credits_display
from billing.models import AutoTopUpSettings, CreditPurchase


@admin.register(CreditPurchase)
class CreditPurchaseAdmin(ReadOnlyAdmin):
    """Card purchases for ops: filter on ``refund_review`` for refunds whose credits were
    already allocated or used (never taken back automatically)."""

    credits_column = credits_display("credits", "Credits")

    list_display = (
        "id",
        "org",
        "purchased_by",
        "credits_column",
        "amount",
        "currency",
        "origin",
        "status",
        "refunded_amount",
        "created_at",
        "fulfilled_at",
    )
    list_filter = ("status", "origin", "currency")
    list_select_related = ("org", "purchased_by")
    search_fields = (
        "=org__id",
        "org__org_name",
        "purchased_by__username",
        "=stripe_checkout_session_id",
        "=stripe_payment_intent_id",
    )
    date_hierarchy = "created_at"
    fields = (
        "org",
        "purchased_by",
        "origin",
        "credits_column",
        "amount",
        "currency",
        "status",
        "failure_reason",
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "checkout_url",
        "checkout_expires_at",
        "fulfilled_at",
        "refunded_amount",
        "refunded_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields


@admin.register(AutoTopUpSettings)
class AutoTopUpSettingsAdmin(ReadOnlyAdmin):
    """Auto top-up per organization, read-only: org admins change it through the API (audited),
    and it turns itself off after repeated declines (``disabled_reason`` says why)."""

    threshold_column = credits_display("threshold_credits", "Threshold")
    amount_column = credits_display("amount_credits", "Per top-up")

    list_display = (
        "org",
        "enabled",
        "threshold_column",
        "amount_column",
        "monthly_cap_usd",
        "consecutive_failures",
        "updated_at",
    )
    list_filter = ("enabled",)
    list_select_related = ("org",)
    search_fields = ("=org__id", "org__org_name")
    fields = (
        "org",
        "enabled",
        "threshold_column",
        "amount_column",
        "monthly_cap_usd",
        "save_card_at_checkout",
        "stripe_payment_method_id",
        "consecutive_failures",
        "disabled_reason",
        "updated_by",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
