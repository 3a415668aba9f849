"""Org-billing API routes (DESIGN.md §6), mounted at /api/v1/org-billing/."""

from django.urls import include, path

urlpatterns = [
    path("", include("billing.api.credit_urls")),
    path("", include("billing.gateway.charge_urls")),
    path("", include("billing.api.report_urls")),
    path("", include("billing.api.auto_topup")),
    path("", include("billing.api.byok")),
]
