"""Admin of the balances (pools, allocations, individual credits): read-only; credits move only
through the actions of ``billing.admin.actions``, which call the ledger services."""

from django.contrib import admin
from django.db.models import F

from billing.admin.actions import ManagesCreditsMixin, add_credits, revoke_allocations
from billing.admin.base import ReadOnlyAdmin, credits_display
from billing.models import IndividualCreditBalance, OrganizationCreditPool, UserCreditAllocation


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
