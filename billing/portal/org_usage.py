"""The org page's usage for a chosen date range: by day, by member and by model, with the top
consumers. The range is validated by the usage API's own query serializer (same defaults, same
span cap, same messages); the figures come from the API's ``usage_summary``.

The form's dates are the person's local days: ``start`` is local midnight of the first day and
``end`` local midnight after the last, handed to the serializer as full timestamps, so the span
cap and the ``start``/``end`` messages are the API's. Text that is not a date goes to the
serializer as typed, for it to refuse in its words.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_date

from billing.api.serializers.reports import UsageQuerySerializer
from billing.portal.common import FormErrors, person, validation_errors
from billing.selectors.usage import UsageSummary, scoped_usage_filters, usage_summary
from organizations.permissions import OrgAccess
from orgbilling.money import millicredits_to_credits

FORM = "usage"


@dataclass
class UsageRange:
    start_day: str
    end_day: str
    errors: FormErrors
    summary: UsageSummary | None = None
    charts: dict[str, Any] = field(default_factory=dict)


def _local_moment(text: str, *, next_day: bool) -> str:
    try:
        day = parse_date(text)
    except ValueError:
        day = None
    if day is None:
        return text
    if next_day:
        day += timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone()).isoformat()


def _chart(labels: list[str], values: list[int], label: str) -> dict[str, Any]:
    return {
        "labels": labels,
        "series": [{"label": label, "data": [millicredits_to_credits(v) for v in values]}],
        "unit": "credits",
    }


def chosen_usage(request: HttpRequest, access: OrgAccess) -> UsageRange:
    """The range in ``?start=&end=`` (local days, both inclusive; default: the last 30 days up to
    today) and, when valid, its usage. A refused range shows the API's message on its field."""
    today = timezone.localdate()
    start_text = request.GET.get("start", "").strip()
    end_text = request.GET.get("end", "").strip()
    shown_start = start_text or (today - timedelta(days=29)).isoformat()
    shown_end = end_text or today.isoformat()
    query = UsageQuerySerializer(
        data={
            "start": _local_moment(shown_start, next_day=False),
            "end": _local_moment(shown_end, next_day=True),
        }
    )
    if not query.is_valid():
        errors = validation_errors(FORM, query.errors, {"start": shown_start, "end": shown_end})
        return UsageRange(start_day=shown_start, end_day=shown_end, errors=errors)
    values = query.validated_data
    filters = scoped_usage_filters(
        caller=person(request), is_admin=access.is_admin, start=values["start"], end=values["end"]
    )
    summary = usage_summary(org_id=access.org.id, filters=filters)
    by_day = {bucket.period_start: bucket.credits_used for bucket in summary.series}
    first: date = values["start"].astimezone(timezone.get_current_timezone()).date()
    last: date = (
        (values["end"] - timedelta(microseconds=1)).astimezone(timezone.get_current_timezone()).date()
    )
    # Buckets are UTC days: a local range's edge can fall on the UTC day before or after it.
    first, last = min([first, *by_day]), max([last, *by_day])
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    charts = {
        "day": _chart([d.isoformat() for d in days], [by_day.get(d, 0) for d in days], "credits used"),
        "member": _chart(
            [u.user_id for u in summary.by_user], [u.credits_used for u in summary.by_user], "credits used"
        ),
        "model": _chart(
            [m.model for m in summary.by_model], [m.credits_used for m in summary.by_model], "credits used"
        ),
    }
    return UsageRange(
        start_day=shown_start, end_day=shown_end, errors=FormErrors(), summary=summary, charts=charts
    )
