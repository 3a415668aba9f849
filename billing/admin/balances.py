"""Admin of the balances (pools, departments, allocations, individual credits): read-only;
credits move only through the actions of ``billing.admin.actions``, which call the ledger
services."""

from typing import Any

from django.contrib import admin
from django.db.models import F, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from billing.admin.actions import (
    ManagesCreditsMixin,
    add_credits,
    delete_departments,
    grant_individual_credits_action,
    grant_promotional_credits,
    revoke_allocations,
    set_department_budget,
)
from billing.admin.base import ReadOnlyAdmin, credits_display
from billing.models import (
    AllocationPeriod,
    Department,
    IndividualCreditBalance,
    OrganizationCreditPool,
    UserCreditAllocation,
)


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
    actions = (add_credits, grant_promotional_credits)


@admin.register(Department)
class DepartmentAdmin(ManagesCreditsMixin, ReadOnlyAdmin):
    budget = credits_display("budget_credits", "Budget (credits)")
    allocated = credits_display("allocated_credits", "Allocated (credits)")
    free = credits_display(
        "free_credits", "Unallocated (credits)", ordering=F("budget_credits") - F("allocated_credits")
    )
    used = credits_display("used", "Used (credits)", ordering="used")

    list_display = ("id", "org", "name", "budget", "allocated", "free", "used", "deleted_at")
    list_select_related = ("org",)
    list_filter = (("deleted_at", admin.EmptyFieldListFilter),)
    search_fields = ("=org__id", "org__org_name", "name")
    fields = (
        "org",
        "name",
        "budget",
        "allocated",
        "free",
        "used",
        "managers",
        "deleted_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = (set_department_budget, delete_departments)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Department]:
        # What the department's allocations used (a charge never writes the department row).
        return super().get_queryset(request).annotate(used=Coalesce(Sum("allocations__used_credits"), 0))


class AllocationPeriodInline(admin.TabularInline):
    """The period boundaries applied to a recurring allocation, newest first: an append-only
    ledger, read-only here (``billing.ledger.periods`` writes it)."""

    model = AllocationPeriod
    fk_name = "allocation"
    amount_shown = credits_display("amount", "Amount (credits)")
    period_used_shown = credits_display("period_used", "Period used (credits)")
    unspent_shown = credits_display("unspent", "Unspent (credits)")
    carried_shown = credits_display("carried_over", "Carried over (credits)")
    reserved_shown = credits_display("reserved", "Held (credits)")
    drawn_shown = credits_display("drawn", "Drawn (credits)")
    returned_shown = credits_display("returned", "Returned (credits)")
    shortfall_shown = credits_display("shortfall", "Shortfall (credits)")
    fields = (
        "period_start",
        "period",
        "mode",
        "amount_shown",
        "period_used_shown",
        "unspent_shown",
        "carried_shown",
        "reserved_shown",
        "drawn_shown",
        "returned_shown",
        "shortfall_shown",
        "created_at",
    )
    readonly_fields = fields
    ordering = ("-period_start",)
    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
    period_amount = credits_display("period_amount_credits", "Period amount (credits)")
    rollover_cap = credits_display("rollover_cap_credits", "Rollover cap (credits)")

    list_display = (
        "id",
        "org",
        "user",
        "department",
        "allocated",
        "used",
        "reserved",
        "free",
        "is_active",
        "expires_at",
        "period",
        "revoked_at",
    )
    list_filter = ("is_active", "period", "period_mode", "expires_at", "created_at")
    list_select_related = ("org", "user", "department")
    search_fields = ("=org__id", "org__org_name", "user__username", "user__email")
    fields = (
        "org",
        "user",
        "department",
        "allocated",
        "used",
        "reserved",
        "free",
        "is_active",
        "expires_at",
        "period",
        "period_mode",
        "period_amount",
        "rollover_cap",
        "current_period_start",
        "next_period_start",
        "allocated_by",
        "revoked_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = (revoke_allocations,)
    inlines = (AllocationPeriodInline,)


@admin.register(IndividualCreditBalance)
class IndividualCreditBalanceAdmin(ManagesCreditsMixin, ReadOnlyAdmin):
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
    actions = (grant_individual_credits_action,)
