"""``/portal/system/`` — the system overview (the reference's ``SystemBillingOverview``), for
system admins only (``acts_as_system_admin``, as the API's ``/billing/system``): totals across
every organization, the top organizations by 30-day usage, revenue, the organizations about to
run out of credits, the top users, plans with their monthly revenue, the reconciliation runs
and their latest drifts, failed webhooks, and links into the Django admin. Anyone else gets
the API's 403 message."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing.portal.common import person, portal_page
from billing.selectors.system import system_dashboard
from billing.selectors.system_health import (
    failed_webhooks,
    latest_drifts,
    latest_reconciliation_runs,
    plans_with_revenue,
    top_users,
)
from organizations.permissions import IsSystemAdmin, acts_as_system_admin
from orgbilling.db import report_timeout


@require_GET
@portal_page
def system_overview(request: HttpRequest) -> HttpResponse:
    if not acts_as_system_admin(person(request)):
        return render(request, "portal/refused.html", {"message": IsSystemAdmin.message}, status=403)
    with report_timeout():
        dashboard = system_dashboard()
        drifted_at, drifts, drift_count = latest_drifts()
        webhook_failures, webhooks = failed_webhooks()
        context = {
            "dashboard": dashboard,
            "plans": plans_with_revenue(),
            "runs": latest_reconciliation_runs(),
            "drifted_at": drifted_at,
            "drifts": drifts,
            "drift_count": drift_count,
            "webhook_failures": webhook_failures,
            "webhooks": webhooks,
            "top_users": top_users(since=dashboard.period_start, until=dashboard.period_end),
        }
    return render(request, "portal/system.html", context)
