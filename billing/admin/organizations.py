"""The credits side of the organization admin: the billing app re-registers
``organizations.admin.OrganizationAdmin`` with the credit actions (add to the pool, allocate to
a member) and the read-only allocations inline, so ``organizations`` never imports billing."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.admin.actions import (
    ManagesCreditsMixin,
    add_credits,
    allocate_credits,
    grant_promotional_credits,
)
from billing.admin.base import credits_display
from billing.models import UserCreditAllocation
from organizations.admin import OrganizationAdmin as MembershipOrganizationAdmin
from organizations.models import Organization


class AllocationInline(admin.TabularInline):
    """Allocations of an organization, read-only: balances change only through the services."""

    model = UserCreditAllocation
    fk_name = "org"
    allocated = credits_display("allocated_credits", "Allocated (credits)")
    used = credits_display("used_credits", "Used (credits)")
    reserved = credits_display("reserved_credits", "Reserved (credits)")
    free = credits_display("free_credits", "Free (credits)", ordering=None)
    fields = ("user", "allocated", "used", "reserved", "free", "is_active", "expires_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("user")
            .order_by("-is_active", "user__username", "pk")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrganizationAdmin(ManagesCreditsMixin, MembershipOrganizationAdmin):
    actions = (add_credits, grant_promotional_credits, allocate_credits)
    inlines = (*MembershipOrganizationAdmin.inlines, AllocationInline)


# organizations.admin (imported above) has registered its admin; this one replaces it.
admin.site.unregister(Organization)
admin.site.register(Organization, OrganizationAdmin)
