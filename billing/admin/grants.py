"""Admin of credit grants: read-only (grants are added through ``add_credits_to_pool``, e.g. the
pool's "Grant promotional credits" action, and expired by ``expire_credit_grants``)."""

from django.contrib import admin

from billing.admin.base import ReadOnlyAdmin, credits_display
from billing.models import CreditGrant


@admin.register(CreditGrant)
class CreditGrantAdmin(ReadOnlyAdmin):
    granted = credits_display("credits", "Credits")
    forfeited = credits_display("forfeited_credits", "Expired (credits)")
    retained = credits_display("retained_credits", "Retained at expiry (credits)")
    refunded = credits_display("refunded_credits", "Refunded (credits)")

    list_display = (
        "id",
        "org",
        "source",
        "granted",
        "priority",
        "expires_at",
        "expired_at",
        "forfeited",
        "retained",
        "created_at",
    )
    list_select_related = ("org",)
    list_filter = ("source", ("expired_at", admin.EmptyFieldListFilter))
    search_fields = ("=org__id", "org__org_name")
    fields = (
        "org",
        "source",
        "granted",
        "priority",
        "expires_at",
        "expired_at",
        "forfeited",
        "retained",
        "refunded",
        "history",
        "purchase",
        "granted_by",
        "description",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
