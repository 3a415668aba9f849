"""Usage, dashboard, analytics and history routes.

Organization ids in paths must look like organization ids, so a malformed one is a plain 404.
``<org_id>/history`` comes last: it is the broadest pattern here and must not shadow the others.
"""

from django.urls import path, re_path

from billing.api.dashboards import OrgDashboardView, SystemDashboardView, UserDashboardView
from billing.api.reports import OrgHistoryView, OrgUsageView, UsageByModelView, UsageByUserView

ORG_ID = r"(?P<org_id>[A-Za-z0-9][A-Za-z0-9_-]{0,63})"

urlpatterns = [
    re_path(rf"^credits/{ORG_ID}/usage$", OrgUsageView.as_view(), name="org-billing-credits-usage"),
    path("billing/user", UserDashboardView.as_view(), name="org-billing-user-dashboard"),
    path("billing/system", SystemDashboardView.as_view(), name="org-billing-system-dashboard"),
    re_path(rf"^billing/org/{ORG_ID}$", OrgDashboardView.as_view(), name="org-billing-org-dashboard"),
    re_path(rf"^usage/{ORG_ID}/by-user$", UsageByUserView.as_view(), name="org-billing-usage-by-user"),
    re_path(rf"^usage/{ORG_ID}/by-model$", UsageByModelView.as_view(), name="org-billing-usage-by-model"),
    re_path(rf"^{ORG_ID}/history$", OrgHistoryView.as_view(), name="org-billing-history"),
]
