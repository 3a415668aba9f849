"""Billing history of an organization: invoices, payments, purchases, subscription changes."""

from django.db.models import QuerySet

from billing.models import OrgBillingHistory


def org_billing_history(*, org_id: str) -> QuerySet[OrgBillingHistory]:
    """The organization's billing events, newest first (on the ``(org, occurred_at)`` index)."""
    return OrgBillingHistory.objects.filter(org_id=org_id).order_by("-occurred_at", "-id")
