"""Usage statistics, usage analytics (JSON or CSV) and billing history of an organization.

Every view starts with ``org_access`` / ``org_admin_access`` (an org the caller cannot see is
404), validates its query string, calls one selector and renders it. Members only ever see
their own usage. The analytics run under the reports' longer statement timeout
(``orgbilling.db.report_timeout``); the billing history is a plain paginated read.
"""

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import ORG_ID_PARAM
from billing.api.report_serializers import (
    HistoryEventSerializer,
    ModelSeriesPageSerializer,
    ModelSeriesRowSerializer,
    PeriodSerializer,
    UsageQuerySerializer,
    UsageSeriesQuerySerializer,
    UsageSummarySerializer,
    UserSeriesPageSerializer,
    UserSeriesRowSerializer,
)
from billing.models import OrgBillingHistory
from billing.money import millicredits_to_credits
from billing.selectors.history import org_billing_history
from billing.selectors.usage import GroupBy, UsageFilters, scoped_usage_filters, usage_series, usage_summary
from organizations.api.common import caller
from organizations.permissions import org_access, org_admin_access
from orgbilling.api.pagination import StandardPagination
from orgbilling.api.schema import error_responses, example
from orgbilling.db import report_timeout
from orgbilling.errors import ValidationFailed

# A CSV export is one response; beyond this many rows, narrow the period or coarsen buckets.
CSV_EXPORT_MAX_ROWS = 100_000
# Cells a spreadsheet would run as a formula are prefixed with a quote.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CsvTable:
    """What a view returns to answer in CSV: a header row and the rows."""

    columns: list[str]
    rows: list[list[Any]]


class CSVRenderer(BaseRenderer):
    """Renders a ``CsvTable`` as CSV. Anything else (errors, OPTIONS) goes out as JSON:
    ``CsvNegotiationMixin`` switches the renderer before this one sees it."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(data.columns)
        for row in data.rows:
            writer.writerow([_safe_cell(cell) for cell in row])
        return buffer.getvalue().encode(self.charset)


def _safe_cell(cell: Any) -> Any:
    if isinstance(cell, str) and cell.startswith(_FORMULA_PREFIXES):
        return "'" + cell
    return cell


class CsvNegotiationMixin:
    """Only a ``CsvTable`` is rendered as CSV: errors (in the one error shape) and OPTIONS
    metadata leave as JSON even when the client asked for CSV."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if isinstance(response, Response) and not isinstance(response.data, CsvTable):
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _filters(request: Request, is_admin: bool, query: dict[str, Any]) -> UsageFilters:
    return scoped_usage_filters(
        caller=caller(request),
        is_admin=is_admin,
        start=query["start"],
        end=query["end"],
        user_id=query["user_id"],
        model=query["model"],
    )


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
    "user_count": 2,
    "model_count": 1,
    "by_model": [
        {
            "model": "gpt-4o",
            "requests": 42,
            "input_tokens": 120000,
            "output_tokens": 38000,
            "credits_used": 152.5,
        }
    ],
    "by_user": [
        {
            "user_id": "alice",
            "requests": 30,
            "input_tokens": 90000,
            "output_tokens": 30000,
            "credits_used": 120.0,
        },
        {
            "user_id": "bob",
            "requests": 12,
            "input_tokens": 30000,
            "output_tokens": 8000,
            "credits_used": 32.5,
        },
    ],
    "series": [
        {
            "period_start": "2025-01-14",
            "requests": 42,
            "input_tokens": 120000,
            "output_tokens": 38000,
            "credits_used": 152.5,
        }
    ],
}


@extend_schema_view(
    get=extend_schema(
        operation_id="credits_usage",
        tags=["credits"],
        summary="Usage statistics of an organization",
        description="Admins and system admins see the whole organization (optionally one `user_id`); "
        "members see only their own usage. The period defaults to the last 30 days.",
        parameters=[ORG_ID_PARAM, UsageQuerySerializer],
        responses={200: UsageSummarySerializer, **error_responses(400, 401, 404, 429)},
        examples=[example("usage", _USAGE_EXAMPLE)],
    )
)
class OrgUsageView(APIView):
    def get(self, request: Request, org_id: str) -> Response:
        access = org_access(user=caller(request), org_id=org_id)
        query = _query(UsageQuerySerializer, request)
        with report_timeout():
            summary = usage_summary(
                org_id=access.org.id,
                filters=_filters(request, access.is_admin, query),
                granularity=query["granularity"],
            )
            return Response(UsageSummarySerializer(summary).data)


_FORMAT_PARAM = OpenApiParameter(
    "format",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=["json", "csv"],
    description="`csv` exports every row (like `Accept: text/csv`); JSON is paginated.",
)


def _series_schema(group_by: GroupBy, page: type[serializers.Serializer]) -> Any:
    key = "user_id" if group_by == "user" else "model"
    value = "alice" if group_by == "user" else "gpt-4o"
    row = {"period_start": "2025-01-13", key: value, "requests": 12}
    row |= {"input_tokens": 30000, "output_tokens": 8000, "credits_used": 32.5}
    csv_text = (
        f"period_start,{key},requests,input_tokens,output_tokens,credits_used\r\n"
        f"2025-01-13,{value},12,30000,8000,32.500\r\n"
    )
    return extend_schema(
        operation_id=f"usage_by_{group_by}",
        tags=["usage"],
        summary=f"Usage time series by {group_by}",
        description=f"One row per time bucket and {group_by}, oldest first. Members see only their own "
        "usage. `Accept: text/csv` or `?format=csv` downloads every row as CSV (credits with 3 "
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


class _UsageSeriesView(CsvNegotiationMixin, APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]
    group_by: GroupBy
    key_column: str
    row_serializer: type[serializers.Serializer]

    def get(self, request: Request, org_id: str) -> Response:
        access = org_access(user=caller(request), org_id=org_id)
        query = _query(UsageSeriesQuerySerializer, request)
        filters = _filters(request, access.is_admin, query)
        period = {"start": query["start"], "end": query["end"]}
        with report_timeout():  # every query of the series runs here, under the reports' limit
            rows = usage_series(
                org_id=access.org.id,
                filters=filters,
                granularity=query["granularity"],
                group_by=self.group_by,
            )
            if request.accepted_renderer.format == "csv":
                return self._csv(access.org.id, period, list(rows[: CSV_EXPORT_MAX_ROWS + 1]))
            paginator = StandardPagination()
            page = paginator.paginate_queryset(rows, request, view=self) or []
            response = paginator.get_paginated_response(self.row_serializer(page, many=True).data)
        response.data |= {
            "granularity": query["granularity"],
            "period": PeriodSerializer(period).data,
        }
        return response

    def _csv(self, org_id: str, period: dict[str, Any], rows: list[dict[str, Any]]) -> Response:
        if len(rows) > CSV_EXPORT_MAX_ROWS:
            raise ValidationFailed(
                f"The export has more than {CSV_EXPORT_MAX_ROWS} rows; narrow the period or use a "
                "coarser granularity.",
                details={"max_rows": CSV_EXPORT_MAX_ROWS},
            )
        columns = [
            "period_start",
            self.key_column,
            "requests",
            "input_tokens",
            "output_tokens",
            "credits_used",
        ]
        lines = [
            [
                row["period_start"].isoformat(),
                row["key"],
                row["requests"],
                row["input_tokens"],
                row["output_tokens"],
                str(millicredits_to_credits(row["credits_used"])),
            ]
            for row in rows
        ]
        last_day = period["end"] - timedelta(microseconds=1)  # the end is exclusive
        filename = f"usage-by-{self.group_by}-{org_id}-{period['start']:%Y%m%d}-{last_day:%Y%m%d}.csv"
        return Response(
            CsvTable(columns=columns, rows=lines),
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


@extend_schema_view(get=_series_schema("user", UserSeriesPageSerializer))
class UsageByUserView(_UsageSeriesView):
    group_by = "user"
    key_column = "user_id"
    row_serializer = UserSeriesRowSerializer


@extend_schema_view(get=_series_schema("model", ModelSeriesPageSerializer))
class UsageByModelView(_UsageSeriesView):
    group_by = "model"
    key_column = "model"
    row_serializer = ModelSeriesRowSerializer


class HistoryFilter(django_filters.FilterSet):
    event_type = django_filters.ChoiceFilter(
        choices=OrgBillingHistory.EventType.choices, help_text="Only events of this type."
    )

    class Meta:
        model = OrgBillingHistory
        fields = ["event_type"]


@extend_schema_view(
    get=extend_schema(
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
)
class OrgHistoryView(generics.ListAPIView):
    serializer_class = HistoryEventSerializer
    filterset_class = HistoryFilter
    queryset = OrgBillingHistory.objects.none()  # the schema's model; get_queryset scopes it

    def get_queryset(self) -> Any:
        access = org_admin_access(user=caller(self.request), org_id=self.kwargs["org_id"])
        return org_billing_history(org_id=access.org.id)
