"""Subscription, credit and allocation routes."""

from django.urls import path

from billing.api.allocations import AllocationDetailView, AllocationListView, CreditTransferView
from billing.api.credits import CreditPoolView, CreditsAddView, CreditsAllocateView
from billing.api.subscriptions import (
    SubscriptionCancelView,
    SubscriptionCreateView,
    SubscriptionDetailView,
    SubscriptionUpgradeView,
)

urlpatterns = [
    path("subscriptions", SubscriptionCreateView.as_view(), name="org-billing-subscription-create"),
    path(
        "subscriptions/<str:org_id>", SubscriptionDetailView.as_view(), name="org-billing-subscription-detail"
    ),
    path(
        "subscriptions/<str:org_id>/upgrade",
        SubscriptionUpgradeView.as_view(),
        name="org-billing-subscription-upgrade",
    ),
    path(
        "subscriptions/<str:org_id>/cancel",
        SubscriptionCancelView.as_view(),
        name="org-billing-subscription-cancel",
    ),
    path("credits/<str:org_id>", CreditPoolView.as_view(), name="org-billing-credit-pool"),
    path("credits/<str:org_id>/add", CreditsAddView.as_view(), name="org-billing-credits-add"),
    path("credits/<str:org_id>/allocate", CreditsAllocateView.as_view(), name="org-billing-credits-allocate"),
    path("credits/<str:org_id>/allocations", AllocationListView.as_view(), name="org-billing-allocations"),
    path(
        "credits/<str:org_id>/allocations/<str:user_id>",
        AllocationDetailView.as_view(),
        name="org-billing-allocation-detail",
    ),
    path("credits/<str:org_id>/transfer", CreditTransferView.as_view(), name="org-billing-credits-transfer"),
]
