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
from drf_spectacular.utils import extend_schema_view
from rest_framework import generics, serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.serializers.reports import (
    BILLING_HISTORY_SCHEMA,
    CSV_EXPORT_MAX_ROWS,
    ORG_USAGE_SCHEMA,
    USAGE_BY_DEPARTMENT_SCHEMA,
    USAGE_BY_MODEL_SCHEMA,
    USAGE_BY_USER_SCHEMA,
    DepartmentSeriesRowSerializer,
    HistoryEventSerializer,
    ModelSeriesRowSerializer,
    PeriodSerializer,
    UsageQuerySerializer,
    UsageSeriesQuerySerializer,
    UsageSummarySerializer,
    UserSeriesRowSerializer,
)
from billing.call_usage import DETAIL_FIELDS as TOKEN_DETAILS
from billing.models import OrgBillingHistory
from billing.money import millicredits_to_credits
from billing.selectors.history import org_billing_history
from billing.selectors.usage import GroupBy, UsageFilters, scoped_usage_filters, usage_series, usage_summary
from organizations.api.common import caller
from organizations.permissions import org_access, org_admin_access
from orgbilling.api.pagination import StandardPagination
from orgbilling.db import report_timeout
from orgbilling.errors import ValidationFailed

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


@extend_schema_view(get=ORG_USAGE_SCHEMA)
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
            *TOKEN_DETAILS,
            "credits_used",
        ]
        lines = [
            [
                row["period_start"].isoformat(),
                row["key"],
                row["requests"],
                row["input_tokens"],
                row["output_tokens"],
                *(row[name] for name in TOKEN_DETAILS),
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


@extend_schema_view(get=USAGE_BY_USER_SCHEMA)
class UsageByUserView(_UsageSeriesView):
    group_by = "user"
    key_column = "user_id"
    row_serializer = UserSeriesRowSerializer


@extend_schema_view(get=USAGE_BY_MODEL_SCHEMA)
class UsageByModelView(_UsageSeriesView):
    group_by = "model"
    key_column = "model"
    row_serializer = ModelSeriesRowSerializer


@extend_schema_view(get=USAGE_BY_DEPARTMENT_SCHEMA)
class UsageByDepartmentView(_UsageSeriesView):
    group_by = "department"
    key_column = "department"
    row_serializer = DepartmentSeriesRowSerializer


class HistoryFilter(django_filters.FilterSet):
    event_type = django_filters.ChoiceFilter(
        choices=OrgBillingHistory.EventType.choices, help_text="Only events of this type."
    )

    class Meta:
        model = OrgBillingHistory
        fields = ["event_type"]


@extend_schema_view(get=BILLING_HISTORY_SCHEMA)
class OrgHistoryView(generics.ListAPIView):
    serializer_class = HistoryEventSerializer
    filterset_class = HistoryFilter
    queryset = OrgBillingHistory.objects.none()  # the schema's model; get_queryset scopes it

    def get_queryset(self) -> Any:
        access = org_admin_access(user=caller(self.request), org_id=self.kwargs["org_id"])
        return org_billing_history(org_id=access.org.id)
