"""Admin of individual credit purchases and the individual credit ledger: read-only (grants go
through the balance's action in ``billing.admin.balances``)."""

from django.contrib import admin

from billing.admin.base import ReadOnlyAdmin, credits_display
from billing.models import IndividualCreditEntry, IndividualCreditPurchase


@admin.register(IndividualCreditPurchase)
class IndividualCreditPurchaseAdmin(ReadOnlyAdmin):
    """Users' card purchases of their own credits; ``refund_review`` needs ops."""

    credits_column = credits_display("credits", "Credits")

    list_display = (
        "id",
        "user",
        "credits_column",
        "amount",
        "currency",
        "status",
        "created_at",
        "fulfilled_at",
    )
    list_filter = ("status", "currency")
    list_select_related = ("user",)
    search_fields = (
        "user__username",
        "user__email",
        "=stripe_checkout_session_id",
        "=stripe_payment_intent_id",
    )
    date_hierarchy = "created_at"
    fields = (
        "user",
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
        "created_at",
        "updated_at",
    )
    readonly_fields = fields


@admin.register(IndividualCreditEntry)
class IndividualCreditEntryAdmin(ReadOnlyAdmin):
    """Every change to a user's individual total: purchases, grants, refunds, migrations."""

    credits_column = credits_display("credits", "Credits")
    total_after_column = credits_display("total_after", "Total after")

    list_display = (
        "id",
        "user",
        "kind",
        "credits_column",
        "total_after_column",
        "org",
        "actor",
        "created_at",
    )
    list_filter = ("kind",)
    list_select_related = ("user", "org", "actor")
    search_fields = ("user__username", "=external_id", "=org__id")
    date_hierarchy = "created_at"
    fields = (
        "user",
        "kind",
        "credits_column",
        "total_after_column",
        "external_id",
        "org",
        "actor",
        "actor_label",
        "reason",
        "metadata",
        "created_at",
    )
    readonly_fields = fields
