"""Serializers of the read-only reporting endpoints: usage, analytics, dashboards, history.

Query strings are validated by strict query serializers (unknown parameters and bad values are
400 ``validation_error``); outputs render millicredits as credits (JSON numbers) and USD as
JSON numbers with two decimals.
"""

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.api.serializers import Credits
from billing.selectors.usage import GRANULARITIES
from orgbilling.api.fields import StrictSerializer
from orgbilling.api.pagination import StandardPagination

DEFAULT_PERIOD = timedelta(days=30)
# DRF reads ``?format=`` itself (content negotiation), so no view sees it as a filter.
_NEGOTIATION_PARAMS = ("format",)


def _usd(**kwargs: Any) -> serializers.DecimalField:
    kwargs.setdefault("help_text", "US dollars")
    return serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=False, **kwargs)


def _percent(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=5, decimal_places=1, coerce_to_string=False, **kwargs)


# --- query strings -------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "string",
        "description": "ISO 8601 date (`2025-01-31`) or date-time (`2025-01-31T12:00:00Z`; "
        "UTC if no offset).",
        "example": "2025-01-01",
    }
)
class DateOrDateTimeField(serializers.Field):
    """A date or a date-time → an aware datetime. A bare date means its first instant, or with
    ``end_of_day`` the first instant of the next day (so ``end=2025-01-31`` includes the 31st)."""

    default_error_messages = {"invalid": "Expected an ISO 8601 date or date-time."}

    def __init__(self, *, end_of_day: bool = False, **kwargs: Any) -> None:
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            # A bare date first: parse_datetime would also read "2025-01-31" as midnight.
            day = parse_date(data)
            if day is not None:
                if self.end_of_day:
                    day += timedelta(days=1)
                moment = datetime.combine(day, time.min)
            else:
                parsed = parse_datetime(data)
                if parsed is None:
                    self.fail("invalid")
                moment = parsed
        except (ValueError, OverflowError):
            self.fail("invalid")
        if timezone.is_naive(moment):
            moment = moment.replace(tzinfo=UTC)
        return moment

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class QuerySerializer(StrictSerializer):
    """Validates ``request.query_params``; unknown parameters are refused."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, QueryDict):
            data = data.copy()
            for name in _NEGOTIATION_PARAMS:
                data.pop(name, None)
        return super().to_internal_value(data)


class UsageQuerySerializer(QuerySerializer):
    start = DateOrDateTimeField(required=False, help_text="From (inclusive). Default: `end` - 30 days.")
    end = DateOrDateTimeField(
        required=False,
        end_of_day=True,
        help_text="Until (exclusive; a bare date includes that day). Default: now.",
    )
    user_id = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=150,
        help_text="Only this user's usage (admins). Members always see only their own.",
    )
    model = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Only this model."
    )
    granularity = serializers.ChoiceField(
        choices=GRANULARITIES, default="day", help_text="Time bucket: `day`, `week` (from Monday) or `month`."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end = attrs.get("end") or timezone.now()
        try:
            start = attrs.get("start") or end - DEFAULT_PERIOD
        except OverflowError:
            raise serializers.ValidationError({"end": ["Out of range."]}) from None
        if start > end:
            raise serializers.ValidationError({"start": ["`start` must not be after `end`."]})
        longest = timedelta(days=settings.USAGE_MAX_SPAN_DAYS)
        if end - start > longest:
            raise serializers.ValidationError(
                {"start": [f"The span may be at most {settings.USAGE_MAX_SPAN_DAYS} days; ask for less."]}
            )
        return {
            **attrs,
            "start": start,
            "end": end,
            "user_id": attrs.get("user_id") or None,
            "model": attrs.get("model") or None,
        }


class UsageSeriesQuerySerializer(UsageQuerySerializer):
    page = serializers.IntegerField(required=False, min_value=1, help_text="Page number (JSON only).")
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=StandardPagination.max_page_size, help_text="Rows per page."
    )


# --- usage ---------------------------------------------------------------------------------


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="inclusive")
    end = serializers.DateTimeField(help_text="exclusive")


class _UsageFigures(serializers.Serializer):
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    credits_used = Credits()


class ModelUsageSerializer(_UsageFigures):
    model = serializers.CharField()


class UserUsageSerializer(_UsageFigures):
    user_id = serializers.CharField()


class UsageBucketSerializer(_UsageFigures):
    period_start = serializers.DateField(help_text="First day of the bucket (UTC)")


class UsageSummarySerializer(serializers.Serializer):
    org_id = serializers.CharField()
    period = PeriodSerializer(source="filters")
    user_id = serializers.CharField(
        source="filters.username", allow_null=True, help_text="user filter applied"
    )
    model = serializers.CharField(source="filters.model", allow_null=True, help_text="model filter applied")
    granularity = serializers.CharField()
    total_credits_used = Credits(source="totals.credits_used")
    total_requests = serializers.IntegerField(source="totals.requests")
    total_input_tokens = serializers.IntegerField(source="totals.input_tokens")
    total_output_tokens = serializers.IntegerField(source="totals.output_tokens")
    user_count = serializers.IntegerField(source="totals.user_count", help_text="users with usage")
    model_count = serializers.IntegerField(source="totals.model_count", help_text="models used")
    by_model = ModelUsageSerializer(many=True, help_text="Top 50 models by credits")
    by_user = UserUsageSerializer(many=True, help_text="Top 50 users by credits (a member: only themselves)")
    series = UsageBucketSerializer(many=True, help_text="Totals per bucket with usage (the last 400)")


class UserSeriesRowSerializer(_UsageFigures):
    period_start = serializers.DateField(help_text="First day of the bucket (UTC)")
    user_id = serializers.CharField(source="key")


class ModelSeriesRowSerializer(_UsageFigures):
    period_start = serializers.DateField(help_text="First day of the bucket (UTC)")
    model = serializers.CharField(source="key")


class _SeriesPage(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    granularity = serializers.CharField()
    period = PeriodSerializer()


class UserSeriesPageSerializer(_SeriesPage):
    results = UserSeriesRowSerializer(many=True)


class ModelSeriesPageSerializer(_SeriesPage):
    results = ModelSeriesRowSerializer(many=True)


# --- history -------------------------------------------------------------------------------


class HistoryEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_type = serializers.CharField()
    external_id = serializers.CharField()
    amount = _usd(allow_null=True)
    currency = serializers.CharField()
    credits = Credits(allow_null=True)
    status = serializers.CharField()
    description = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()


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
    percent_allocated = _percent()
    percent_used = _percent()


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
    percent_used = _percent(help_text="used ÷ allocated")
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
    monthly_price = _usd()
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
    amount = _usd(help_text="sum of the events' amounts")
    credits = Credits()


class RevenueSerializer(serializers.Serializer):
    currency = serializers.CharField()
    total_last_30_days = _usd(help_text="credit purchases + payments - refunds")
    total_all_time = _usd(help_text="credit purchases + payments - refunds")
    last_30_days = RevenueLineSerializer(many=True)
    all_time = RevenueLineSerializer(many=True)


class NearExhaustionSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    org_name = serializers.CharField()
    total_credits = Credits()
    allocated_credits = Credits()
    available_credits = Credits()
    percent_available = _percent()
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
