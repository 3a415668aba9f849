"""Dashboards: a user's organizations, an org admin's organization, the system overview:
serializers, then the endpoints' OpenAPI schemas."""

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers

from billing.api.serializers.departments import DepartmentSerializer
from billing.api.serializers.fields import ORG_ID_PARAM, Credits, percent_field, usd_field
from billing.api.serializers.reports import (
    HistoryEventSerializer,
    ModelUsageSerializer,
    PeriodSerializer,
    UserUsageSerializer,
)
from orgbilling.api.schema import error_responses, example

# --- dashboards ----------------------------------------------------------------------------


class OrgBalanceSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    org_name = serializers.CharField()
    org_is_active = serializers.BooleanField()
    role = serializers.CharField(help_text="`admin` or `member`")
    is_default = serializers.BooleanField()
    allocated_credits = Credits()
    used_credits = Credits()
    reserved_credits = Credits(help_text="held by calls in flight")
    remaining_credits = Credits(help_text="allocated - used - reserved")
    allocation_expires_at = serializers.DateTimeField(allow_null=True)
    allocation_expired = serializers.BooleanField()


class IndividualBalanceSerializer(serializers.Serializer):
    total = Credits()
    used = Credits()
    reserved = Credits()
    remaining = Credits()


class BalanceTotalsSerializer(serializers.Serializer):
    organizations = serializers.IntegerField()
    allocated_credits = Credits()
    used_credits = Credits()
    reserved_credits = Credits()
    remaining_credits = Credits(help_text="across the organizations")
    total_remaining_credits = Credits(help_text="organizations plus individual credits")


class UserDashboardSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    default_org_id = serializers.CharField(allow_null=True, help_text="the org that pays by default")
    organizations = OrgBalanceSerializer(many=True)
    individual_credits = IndividualBalanceSerializer()
    totals = BalanceTotalsSerializer()


class PoolSummarySerializer(serializers.Serializer):
    total_credits = Credits()
    allocated_credits = Credits()
    used_credits = Credits()
    available_credits = Credits(help_text="total - allocated")
    percent_allocated = percent_field()
    percent_used = percent_field()


class MemberBalanceSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    email = serializers.CharField()
    role = serializers.CharField()
    status = serializers.CharField()
    joined_at = serializers.DateTimeField()
    has_allocation = serializers.BooleanField()
    allocated_credits = Credits()
    used_credits = Credits()
    reserved_credits = Credits()
    remaining_credits = Credits()
    percent_used = percent_field(help_text="used ÷ allocated")
    allocation_expires_at = serializers.DateTimeField(allow_null=True)


class WindowUsageSerializer(serializers.Serializer):
    credits_used = Credits()
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    user_count = serializers.IntegerField()
    model_count = serializers.IntegerField()


class DailyUsageSerializer(serializers.Serializer):
    date = serializers.DateField()
    requests = serializers.IntegerField()
    credits_used = Credits()


class SubscriptionSummarySerializer(serializers.Serializer):
    plan_code = serializers.CharField()
    plan_name = serializers.CharField()
    status = serializers.CharField()
    monthly_price = usd_field()
    currency = serializers.CharField()
    current_period_start = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    canceled_at = serializers.DateTimeField(allow_null=True)


class OrgDashboardSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    org_name = serializers.CharField()
    is_active = serializers.BooleanField()
    period = serializers.SerializerMethodField()
    pool = PoolSummarySerializer()
    member_count = serializers.IntegerField(help_text="all members; `members` lists the first 100")
    members = MemberBalanceSerializer(many=True)
    usage = WindowUsageSerializer(help_text="the last 30 days")
    top_users = UserUsageSerializer(many=True, help_text="top 10 over the last 30 days")
    usage_by_model = ModelUsageSerializer(many=True, help_text="top 20 over the last 30 days")
    daily_usage = DailyUsageSerializer(many=True, help_text="every UTC day of the last 30, zeros included")
    recent_history = HistoryEventSerializer(many=True, help_text="the last 10 billing events")
    subscription = SubscriptionSummarySerializer(allow_null=True)
    departments = DepartmentSerializer(many=True, help_text="the live departments (the first 100)")

    @extend_schema_field(PeriodSerializer)
    def get_period(self, dashboard: Any) -> dict[str, Any]:
        return PeriodSerializer({"start": dashboard.period_start, "end": dashboard.period_end}).data


class SystemTotalsSerializer(serializers.Serializer):
    organizations = serializers.IntegerField()
    active_organizations = serializers.IntegerField()
    active_members = serializers.IntegerField()
    pool_total_credits = Credits()
    pool_allocated_credits = Credits()
    pool_used_credits = Credits()
    pool_available_credits = Credits()
    credits_used_last_30_days = Credits()
    requests_last_30_days = serializers.IntegerField()


class OrgUsageRankSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    org_name = serializers.CharField()
    credits_used = Credits()
    requests = serializers.IntegerField()


class RevenueLineSerializer(serializers.Serializer):
    event_type = serializers.CharField()
    currency = serializers.CharField()
    count = serializers.IntegerField()
    amount = usd_field(help_text="sum of the events' amounts")
    credits = Credits()


class RevenueSerializer(serializers.Serializer):
    currency = serializers.CharField()
    total_last_30_days = usd_field(help_text="credit purchases + payments - refunds")
    total_all_time = usd_field(help_text="credit purchases + payments - refunds")
    last_30_days = RevenueLineSerializer(many=True)
    all_time = RevenueLineSerializer(many=True)


class NearExhaustionSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    org_name = serializers.CharField()
    total_credits = Credits()
    allocated_credits = Credits()
    available_credits = Credits()
    percent_available = percent_field()
    pool_nearly_allocated = serializers.BooleanField(help_text="less than 10% of the pool unallocated")
    allocations_near_exhaustion = serializers.IntegerField(help_text="active allocations ≥ 90% used")


class SystemDashboardSerializer(serializers.Serializer):
    period = serializers.SerializerMethodField()
    totals = SystemTotalsSerializer()
    top_orgs = OrgUsageRankSerializer(many=True, help_text="top 10 by credits used over the last 30 days")
    revenue = RevenueSerializer()
    near_exhaustion_count = serializers.IntegerField()
    orgs_near_exhaustion = NearExhaustionSerializer(many=True, help_text="the 50 closest to running out")

    @extend_schema_field(PeriodSerializer)
    def get_period(self, dashboard: Any) -> dict[str, Any]:
        return PeriodSerializer({"start": dashboard.period_start, "end": dashboard.period_end}).data


# --- OpenAPI -------------------------------------------------------------------------------

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


USER_DASHBOARD_SCHEMA = extend_schema(
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
    "departments": [
        {
            "department_id": 3,
            "name": "Engineering",
            "budget_credits": 4000.0,
            "allocated_credits": 1500.0,
            "used_credits": 120.5,
            "managers": ["eng-manager"],
        }
    ],
}


ORG_DASHBOARD_SCHEMA = extend_schema(
    operation_id="billing_org_dashboard",
    tags=["dashboards"],
    summary="An organization's dashboard (org admins)",
    description="Pool, members (the first 100, with `member_count`), the last 30 days' usage "
    "(top users, by model, every day), the last 10 billing events and the subscription.",
    parameters=[ORG_ID_PARAM],
    responses={200: OrgDashboardSerializer, **error_responses(401, 403, 404, 429)},
    examples=[example("org dashboard", _ORG_DASHBOARD_EXAMPLE)],
)

SYSTEM_DASHBOARD_SCHEMA = extend_schema(
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
