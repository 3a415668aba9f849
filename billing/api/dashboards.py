"""Dashboards: a user's organizations, an org admin's organization, the system overview; each
aggregates under the reports' longer statement timeout (``orgbilling.db.report_timeout``)."""

from drf_spectacular.utils import extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from billing.api.serializers.dashboards import (
    ORG_DASHBOARD_SCHEMA,
    SYSTEM_DASHBOARD_SCHEMA,
    USER_DASHBOARD_SCHEMA,
    OrgDashboardSerializer,
    SystemDashboardSerializer,
    UserDashboardSerializer,
)
from billing.selectors.dashboards import org_dashboard, user_dashboard
from billing.selectors.system import system_dashboard
from organizations.api.common import caller
from organizations.permissions import IsSystemAdmin, org_admin_access
from orgbilling.db import report_timeout


@extend_schema_view(get=USER_DASHBOARD_SCHEMA)
class UserDashboardView(APIView):
    def get(self, request: Request) -> Response:
        with report_timeout():
            return Response(UserDashboardSerializer(user_dashboard(user=caller(request))).data)


@extend_schema_view(get=ORG_DASHBOARD_SCHEMA)
class OrgDashboardView(APIView):
    def get(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        with report_timeout():
            return Response(OrgDashboardSerializer(org_dashboard(org=access.org)).data)


@extend_schema_view(get=SYSTEM_DASHBOARD_SCHEMA)
class SystemDashboardView(APIView):
    # The defaults too: an org-scoped API key must not read the system overview.
    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, IsSystemAdmin]  # type: ignore[list-item]

    def get(self, request: Request) -> Response:
        with report_timeout():
            return Response(SystemDashboardSerializer(system_dashboard()).data)
