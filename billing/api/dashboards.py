"""Dashboards: a user's organizations, an org admin's organization, the system overview; each
aggregates under the reports' longer statement timeout (``orgbilling.db.report_timeout``)."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from billing.api.common import ORG_ID_PARAM
from billing.api.report_serializers import (
    OrgDashboardSerializer,
    SystemDashboardSerializer,
    UserDashboardSerializer,
)
from billing.selectors.dashboards import org_dashboard, user_dashboard
from billing.selectors.system import system_dashboard
from organizations.api.common import caller
from organizations.permissions import IsSystemAdmin, org_admin_access
from orgbilling.api.schema import error_responses, example
from orgbilling.db import report_timeout

_ORG_BALANCE = {
    "org_id": "org_abc123",
    "org_name": "Acme",
    "org_is_active": True,
    "role": "member",
    "is_default": True,
    "allocated_credits": 5000.0,
    "used_credits": 120.5,
    "reserved_credits": 0.0,
    "remaining_credits": 4879.5,
    "allocation_expires_at": None,
    "allocation_expired": False,
}


@extend_schema_view(
    get=extend_schema(
        operation_id="billing_user_dashboard",
        tags=["dashboards"],
        summary="The caller's organizations and credits",
        description="Every active membership with the caller's allocation in it, their individual "
        "credits, the org that pays by default, and totals.",
        responses={200: UserDashboardSerializer, **error_responses(401, 429)},
        examples=[
            example(
                "user dashboard",
                {
                    "user_id": "alice",
                    "default_org_id": "org_abc123",
                    "organizations": [_ORG_BALANCE],
                    "individual_credits": {"total": 100.0, "used": 10.0, "reserved": 0.0, "remaining": 90.0},
                    "totals": {
                        "organizations": 1,
                        "allocated_credits": 5000.0,
                        "used_credits": 120.5,
                        "reserved_credits": 0.0,
                        "remaining_credits": 4879.5,
                        "total_remaining_credits": 4969.5,
                    },
                },
            )
        ],
    )
)
class UserDashboardView(APIView):
    def get(self, request: Request) -> Response:
        with report_timeout():
            return Response(UserDashboardSerializer(user_dashboard(user=caller(request))).data)


_ORG_DASHBOARD_EXAMPLE = {
    "org_id": "org_abc123",
    "org_name": "Acme",
    "is_active": True,
    "period": {"start": "2024-12-16T00:00:00Z", "end": "2025-01-14T10:00:00Z"},
    "pool": {
        "total_credits": 10000.0,
        "allocated_credits": 5000.0,
        "used_credits": 120.5,
        "available_credits": 5000.0,
        "percent_allocated": 50.0,
        "percent_used": 1.2,
    },
    "member_count": 1,
    "members": [
        {
            "user_id": "alice",
            "email": "alice@example.com",
            "role": "member",
            "status": "active",
            "joined_at": "2024-12-01T09:00:00Z",
            "has_allocation": True,
            "allocated_credits": 5000.0,
            "used_credits": 120.5,
            "reserved_credits": 0.0,
            "remaining_credits": 4879.5,
            "percent_used": 2.4,
            "allocation_expires_at": None,
        }
    ],
    "usage": {
        "credits_used": 120.5,
        "requests": 30,
        "input_tokens": 90000,
        "output_tokens": 30000,
        "user_count": 1,
        "model_count": 1,
    },
    "top_users": [
        {
            "user_id": "alice",
            "requests": 30,
            "input_tokens": 90000,
            "output_tokens": 30000,
            "credits_used": 120.5,
        }
    ],
    "usage_by_model": [
        {
            "model": "gpt-4o",
            "requests": 30,
            "input_tokens": 90000,
            "output_tokens": 30000,
            "credits_used": 120.5,
        }
    ],
    "daily_usage": [{"date": "2025-01-14", "requests": 30, "credits_used": 120.5}],
    "recent_history": [],
    "subscription": {
        "plan_code": "professional",
        "plan_name": "Professional",
        "status": "active",
        "monthly_price": 49.0,
        "currency": "USD",
        "current_period_start": "2025-01-01T00:00:00Z",
        "current_period_end": "2025-02-01T00:00:00Z",
        "canceled_at": None,
    },
}


@extend_schema_view(
    get=extend_schema(
        operation_id="billing_org_dashboard",
        tags=["dashboards"],
        summary="An organization's dashboard (org admins)",
        description="Pool, members (the first 100, with `member_count`), the last 30 days' usage "
        "(top users, by model, every day), the last 10 billing events and the subscription.",
        parameters=[ORG_ID_PARAM],
        responses={200: OrgDashboardSerializer, **error_responses(401, 403, 404, 429)},
        examples=[example("org dashboard", _ORG_DASHBOARD_EXAMPLE)],
    )
)
class OrgDashboardView(APIView):
    def get(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        with report_timeout():
            return Response(OrgDashboardSerializer(org_dashboard(org=access.org)).data)


@extend_schema_view(
    get=extend_schema(
        operation_id="billing_system_dashboard",
        tags=["dashboards"],
        summary="System overview (system admins)",
        description="Totals across organizations, top organizations by usage over the last 30 days, "
        "revenue from the billing history, and organizations near exhaustion (pool < 10% "
        "unallocated, or allocations ≥ 90% used).",
        responses={200: SystemDashboardSerializer, **error_responses(401, 403, 429)},
        examples=[
            example(
                "system dashboard",
                {
                    "period": {"start": "2024-12-16T00:00:00Z", "end": "2025-01-14T10:00:00Z"},
                    "totals": {
                        "organizations": 3,
                        "active_organizations": 3,
                        "active_members": 12,
                        "pool_total_credits": 30000.0,
                        "pool_allocated_credits": 12000.0,
                        "pool_used_credits": 2500.0,
                        "pool_available_credits": 18000.0,
                        "credits_used_last_30_days": 1800.0,
                        "requests_last_30_days": 640,
                    },
                    "top_orgs": [
                        {"org_id": "org_abc123", "org_name": "Acme", "credits_used": 1200.0, "requests": 400}
                    ],
                    "revenue": {
                        "currency": "USD",
                        "total_last_30_days": 50.0,
                        "total_all_time": 150.0,
                        "last_30_days": [
                            {
                                "event_type": "credit_purchase",
                                "currency": "USD",
                                "count": 1,
                                "amount": 50.0,
                                "credits": 5000.0,
                            }
                        ],
                        "all_time": [
                            {
                                "event_type": "credit_purchase",
                                "currency": "USD",
                                "count": 3,
                                "amount": 150.0,
                                "credits": 15000.0,
                            }
                        ],
                    },
                    "near_exhaustion_count": 1,
                    "orgs_near_exhaustion": [
                        {
                            "org_id": "org_small",
                            "org_name": "Small team",
                            "total_credits": 1000.0,
                            "allocated_credits": 950.0,
                            "available_credits": 50.0,
                            "percent_available": 5.0,
                            "pool_nearly_allocated": True,
                            "allocations_near_exhaustion": 0,
                        }
                    ],
                },
            )
        ],
    )
)
class SystemDashboardView(APIView):
    # The defaults too: an org-scoped API key must not read the system overview.
    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, IsSystemAdmin]  # type: ignore[list-item]

    def get(self, request: Request) -> Response:
        with report_timeout():
            return Response(SystemDashboardSerializer(system_dashboard()).data)
