"""Admin for the billing app. Balances show in credits and are never editable here: pools,
allocations and ledger rows are read-only, and credits move only through the actions of
``billing.admin_forms``, which call the ledger services."""

from typing import Any

from django.contrib import admin
from django.db.models import F
from django.http import HttpRequest

from billing.admin_forms import (
    ManagesCreditsMixin,
    add_credits,
    credits_display,
    revoke_allocations,
)
from billing.models import (
    AuditEvent,
    AutoTopUpSettings,
    CreditPurchase,
    CreditReservation,
    CreditUsageAttribution,
    IndividualCreditBalance,
    ModelPrice,
    OrganizationCreditPool,
    OrganizationSubscription,
    OrgBillingHistory,
    Plan,
    UserCreditAllocation,
    WebhookEvent,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services: viewable, never added, edited or deleted in the admin.
    A POST to their change page is refused (403) by Django because change is not permitted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LedgerAdmin(ReadOnlyAdmin):
    """Large append-only tables: no exact total count on every changelist page."""

    show_full_result_count = False
    list_per_page = 100


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


@admin.register(OrganizationCreditPool)
class OrganizationCreditPoolAdmin(ManagesCreditsMixin, ReadOnlyAdmin):
    total = credits_display("total_credits", "Total (credits)")
    allocated = credits_display("allocated_credits", "Allocated (credits)")
    used = credits_display("used_credits", "Used (credits)")
    available = credits_display(
        "available_credits", "Available (credits)", ordering=F("total_credits") - F("allocated_credits")
    )

    list_display = ("org", "total", "allocated", "used", "available", "updated_at")
    list_select_related = ("org",)
    list_filter = ("org__is_active",)
    search_fields = ("=org__id", "org__org_name")
    fields = ("org", "total", "allocated", "used", "available", "created_at", "updated_at")
    readonly_fields = fields
    actions = (add_credits,)


@admin.register(UserCreditAllocation)
class UserCreditAllocationAdmin(ManagesCreditsMixin, ReadOnlyAdmin):
    allocated = credits_display("allocated_credits", "Allocated (credits)")
    used = credits_display("used_credits", "Used (credits)")
    reserved = credits_display("reserved_credits", "Reserved (credits)")
    free = credits_display(
        "free_credits",
        "Free (credits)",
        ordering=F("allocated_credits") - F("used_credits") - F("reserved_credits"),
    )

    list_display = (
        "id",
        "org",
        "user",
        "allocated",
        "used",
        "reserved",
        "free",
        "is_active",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("is_active", "expires_at", "created_at")
    list_select_related = ("org", "user")
    search_fields = ("=org__id", "org__org_name", "user__username", "user__email")
    fields = (
        "org",
        "user",
        "allocated",
        "used",
        "reserved",
        "free",
        "is_active",
        "expires_at",
        "allocated_by",
        "revoked_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = (revoke_allocations,)


@admin.register(IndividualCreditBalance)
class IndividualCreditBalanceAdmin(ReadOnlyAdmin):
    total = credits_display("total_credits", "Total (credits)")
    used = credits_display("used_credits", "Used (credits)")
    reserved = credits_display("reserved_credits", "Reserved (credits)")
    free = credits_display(
        "free_credits",
        "Free (credits)",
        ordering=F("total_credits") - F("used_credits") - F("reserved_credits"),
    )

    list_display = ("user", "total", "used", "reserved", "free", "updated_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email")
    fields = ("user", "total", "used", "reserved", "free", "created_at", "updated_at")
    readonly_fields = fields


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


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices are edited here; a change applies to calls priced after it (each charge stores
    the price it used)."""

    list_display = (
        "model",
        "input_credits_per_million",
        "output_credits_per_million",
        "image_credits",
        "max_output_tokens",
        "is_active",
        "updated_at",
    )
    list_filter = ("is_active",)
    search_fields = ("model",)
    list_editable = ("is_active",)


# Rows kept by the periodic tasks (rollups, usage alerts).
import billing.usage_admin  # noqa: E402,F401
