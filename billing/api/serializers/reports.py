"""Usage statistics, usage analytics (JSON or CSV) and billing history of an organization:
query-string and output serializers, then the endpoints' OpenAPI schemas.

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
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers

from billing.api.serializers.fields import ORG_ID_PARAM, Credits, usd_field
from billing.selectors.usage import GRANULARITIES, GroupBy
from orgbilling.api.fields import StrictSerializer
from orgbilling.api.pagination import StandardPagination
from orgbilling.api.schema import error_responses, example

DEFAULT_PERIOD = timedelta(days=30)
# DRF reads ``?format=`` itself (content negotiation), so no view sees it as a filter.
_NEGOTIATION_PARAMS = ("format",)
# A CSV export is one response; beyond this many rows, narrow the period or coarsen buckets.
CSV_EXPORT_MAX_ROWS = 100_000


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
    input_tokens = serializers.IntegerField(
        help_text="all prompt tokens, the cached, cache-write and audio ones included"
    )
    output_tokens = serializers.IntegerField(
        help_text="all output tokens, the reasoning and audio ones included"
    )
    cached_tokens = serializers.IntegerField(help_text="of input_tokens: read from the provider's cache")
    cache_write_tokens = serializers.IntegerField(
        help_text="of input_tokens: written to the provider's cache"
    )
    audio_input_tokens = serializers.IntegerField(help_text="of input_tokens: audio")
    reasoning_tokens = serializers.IntegerField(help_text="of output_tokens: hidden reasoning")
    audio_output_tokens = serializers.IntegerField(help_text="of output_tokens: audio")
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
    total_cached_tokens = serializers.IntegerField(source="totals.cached_tokens")
    total_cache_write_tokens = serializers.IntegerField(source="totals.cache_write_tokens")
    total_audio_input_tokens = serializers.IntegerField(source="totals.audio_input_tokens")
    total_reasoning_tokens = serializers.IntegerField(source="totals.reasoning_tokens")
    total_audio_output_tokens = serializers.IntegerField(source="totals.audio_output_tokens")
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


class DepartmentSeriesRowSerializer(_UsageFigures):
    period_start = serializers.DateField(help_text="First day of the bucket (UTC)")
    department_id = serializers.IntegerField(allow_null=True, help_text="null: usage outside departments")
    department = serializers.CharField(
        source="key", help_text='The department\'s name ("" outside departments)'
    )


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


class DepartmentSeriesPageSerializer(_SeriesPage):
    results = DepartmentSeriesRowSerializer(many=True)


# --- history -------------------------------------------------------------------------------


class HistoryEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_type = serializers.CharField()
    external_id = serializers.CharField()
    amount = usd_field(allow_null=True)
    currency = serializers.CharField()
    credits = Credits(allow_null=True)
    status = serializers.CharField()
    description = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()


# --- OpenAPI -------------------------------------------------------------------------------

# A row's token breakdown in the examples (parts of its input_tokens / output_tokens).
BREAKDOWN_EXAMPLE = {
    "cached_tokens": 20000,
    "cache_write_tokens": 0,
    "audio_input_tokens": 0,
    "reasoning_tokens": 2000,
    "audio_output_tokens": 0,
}

_USAGE_EXAMPLE = {
    "org_id": "org_abc123",
    "period": {"start": "2025-01-01T00:00:00Z", "end": "2025-01-31T00:00:00Z"},
    "user_id": None,
    "model": None,
    "granularity": "day",
    "total_credits_used": 152.5,
    "total_requests": 42,
    "total_input_tokens": 120000,
    "total_output_tokens": 38000,
    "total_cached_tokens": BREAKDOWN_EXAMPLE["cached_tokens"],
    "total_cache_write_tokens": BREAKDOWN_EXAMPLE["cache_write_tokens"],
    "total_audio_input_tokens": BREAKDOWN_EXAMPLE["audio_input_tokens"],
    "total_reasoning_tokens": BREAKDOWN_EXAMPLE["reasoning_tokens"],
    "total_audio_output_tokens": BREAKDOWN_EXAMPLE["audio_output_tokens"],
    "user_count": 2,
    "model_count": 1,
    "by_model": [
        {
            "model": "gpt-4o",
            "requests": 42,
            "input_tokens": 120000,
            "output_tokens": 38000,
            **BREAKDOWN_EXAMPLE,
            "credits_used": 152.5,
        }
    ],
    "by_user": [
        {
            "user_id": "alice",
            "requests": 30,
            "input_tokens": 90000,
            "output_tokens": 30000,
            **BREAKDOWN_EXAMPLE,
            "credits_used": 120.0,
        },
        {
            "user_id": "bob",
            "requests": 12,
            "input_tokens": 30000,
            "output_tokens": 8000,
            **BREAKDOWN_EXAMPLE,
            "credits_used": 32.5,
        },
    ],
    "series": [
        {
            "period_start": "2025-01-14",
            "requests": 42,
            "input_tokens": 120000,
            "output_tokens": 38000,
            **BREAKDOWN_EXAMPLE,
            "credits_used": 152.5,
        }
    ],
}

ORG_USAGE_SCHEMA = extend_schema(
    operation_id="credits_usage",
    tags=["credits"],
    summary="Usage statistics of an organization",
    description="Admins and system admins see the whole organization (optionally one `user_id`); "
    "members see only their own usage. The period defaults to the last 30 days.",
    parameters=[ORG_ID_PARAM, UsageQuerySerializer],
    responses={200: UsageSummarySerializer, **error_responses(400, 401, 404, 429)},
    examples=[example("usage", _USAGE_EXAMPLE)],
)

_FORMAT_PARAM = OpenApiParameter(
    "format",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=["json", "csv"],
    description="`csv` exports every row (like `Accept: text/csv`); JSON is paginated.",
)


_DEPARTMENT_NOTE = (
    " A member's usage counts for the department of their active allocation (else their latest);"
    ' usage outside departments has `department_id` null and `department` "".'
)


def _usage_series_schema(group_by: GroupBy, page: type[serializers.Serializer]) -> Any:
    """The schema of a usage series endpoint: paginated JSON, or every row as CSV."""
    key, value = {"user": ("user_id", "alice"), "model": ("model", "gpt-4o")}.get(
        group_by, ("department", "Engineering")
    )
    row = {"period_start": "2025-01-13", key: value, "requests": 12}
    if group_by == "department":
        row = {"period_start": "2025-01-13", "department_id": 3, key: value, "requests": 12}
    row |= {"input_tokens": 30000, "output_tokens": 8000, **BREAKDOWN_EXAMPLE, "credits_used": 32.5}
    csv_text = (
        f"period_start,{key},requests,input_tokens,output_tokens,{','.join(BREAKDOWN_EXAMPLE)},credits_used\r\n"
        f"2025-01-13,{value},12,30000,8000,{','.join(map(str, BREAKDOWN_EXAMPLE.values()))},32.500\r\n"
    )
    note = _DEPARTMENT_NOTE if group_by == "department" else ""
    return extend_schema(
        operation_id=f"usage_by_{group_by}",
        tags=["usage"],
        summary=f"Usage time series by {group_by}",
        description=f"One row per time bucket and {group_by}, oldest first. Members see only their own "
        f"usage.{note} `Accept: text/csv` or `?format=csv` downloads every row as CSV (credits with 3 "
        f"decimals; at most {CSV_EXPORT_MAX_ROWS} rows).",
        parameters=[ORG_ID_PARAM, UsageSeriesQuerySerializer, _FORMAT_PARAM],
        responses={
            (200, "application/json"): page,
            (200, "text/csv"): OpenApiTypes.STR,
            # Errors are JSON whatever was asked for.
            **{
                (status, "application/json"): error
                for status, error in error_responses(400, 401, 404, 429).items()
            },
        },
        examples=[
            example(
                f"usage by {group_by}",
                {
                    "count": 1,
                    "next": None,
                    "previous": None,
                    "granularity": "week",
                    "period": {"start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z"},
                    "results": [row],
                },
            ),
            OpenApiExample(
                f"usage by {group_by} (CSV)",
                value=csv_text,
                response_only=True,
                status_codes=["200"],
                media_type="text/csv",
            ),
        ],
    )


USAGE_BY_USER_SCHEMA = _usage_series_schema("user", UserSeriesPageSerializer)
USAGE_BY_MODEL_SCHEMA = _usage_series_schema("model", ModelSeriesPageSerializer)
USAGE_BY_DEPARTMENT_SCHEMA = _usage_series_schema("department", DepartmentSeriesPageSerializer)

BILLING_HISTORY_SCHEMA = extend_schema(
    operation_id="billing_history",
    tags=["history"],
    summary="Billing history of an organization",
    description="Invoices, payments, credit purchases and grants, refunds and subscription "
    "changes, newest first. Org admins and system admins.",
    parameters=[ORG_ID_PARAM],
    responses={200: HistoryEventSerializer(many=True), **error_responses(400, 401, 403, 404, 429)},
    # (the example is one event: the schema wraps it in the paginated list)
    examples=[
        example(
            "history",
            {
                "id": 7,
                "event_type": "credit_purchase",
                "external_id": "credits-2f1c9a",
                "amount": 50.0,
                "currency": "USD",
                "credits": 5000.0,
                "status": "completed",
                "description": "Credits added to the pool",
                "occurred_at": "2025-01-14T10:00:00Z",
                "created_at": "2025-01-14T10:00:00Z",
            },
        )
    ],
)
