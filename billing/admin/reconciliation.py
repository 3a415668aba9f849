"""Admin of reconciliation runs: read-only."""

from django.contrib import admin

from billing.admin.base import ReadOnlyAdmin
from billing.models import ReconciliationRun


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ("finished_at", "started_at", "drift_count")
    date_hierarchy = "finished_at"
    fields = ("started_at", "finished_at", "drift_count")
    readonly_fields = fields
