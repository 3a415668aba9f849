"""Admin of members' credit requests: read-only; approving and declining go through the credit
request service (``billing.admin.actions``), whose rules apply to staff too."""

from django.contrib import admin

from billing.admin.actions import ManagesCreditsMixin, approve_credit_requests, decline_credit_requests
from billing.admin.base import ReadOnlyAdmin, credits_display
from billing.models import CreditRequest


@admin.register(CreditRequest)
class CreditRequestAdmin(ManagesCreditsMixin, ReadOnlyAdmin):
    asked = credits_display("credits", "Credits")

    list_display = ("id", "org", "requester", "asked", "status", "department", "created_at", "decided_by")
    list_filter = ("status", "created_at")
    list_select_related = ("org", "requester", "department", "decided_by")
    search_fields = ("=org__id", "org__org_name", "requester__username", "requester__email")
    fields = (
        "org",
        "requester",
        "department",
        "asked",
        "reason",
        "status",
        "decided_by",
        "decided_at",
        "decision_note",
        "allocation",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = (approve_credit_requests, decline_credit_requests)
