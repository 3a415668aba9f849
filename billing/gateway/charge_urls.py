"""The charge API's route, to be mounted under /api/v1/org-billing/ (``charges``)."""

from django.urls import path

from billing.gateway.charge_api import ChargeView

urlpatterns = [
    path("charges", ChargeView.as_view(), name="org-billing-charges"),
]
