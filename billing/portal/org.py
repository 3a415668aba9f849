"""``/portal/orgs/<org_id>/`` — one organization's billing (the reference's
``OrganizationBillingPro``). Members see the pool, their own allocation and their usage; org
admins (and system admins) also get the pool's use, the members table with a labelled
**Credits** input and an **Allocate** button per member, the transfer dialog (the reference's
``CreditTransferDialog``), usage by member and model, and the billing history.

Access is the API's: ``org_access`` (an org the caller may not see is the 404 page) and, for
each admin action, ``org_admin_access`` (a member gets the API's 403 message). Each action
validates with the API's serializer and calls the API's service.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from rest_framework import serializers

from billing.api.serializers.allocations import TransferInput
from billing.api.serializers.credits import AllocateInput
from billing.models import Period
from billing.portal.common import (
    FormErrors,
    form_values,
    person,
    portal_page,
    refusal_errors,
    validation_errors,
)
from billing.portal.once import FIELD as FORM_KEY
from billing.portal.once import form_key, run_once
from billing.portal.org_departments import OWN_FORMS, departments_and_requests
from billing.portal.org_grants import grant_rows
from billing.portal.org_usage import chosen_usage
from billing.selectors.auto_topup import auto_topup_settings_of
from billing.selectors.dashboards import MEMBER_LIMIT, dashboard_window, org_dashboard, pool_summary
from billing.selectors.ledger import allocations_visible_to
from billing.selectors.org_activity import org_usage_alerts
from billing.selectors.plans import active_plans
from billing.selectors.pool_history import PoolDay, pool_history
from billing.selectors.usage import UsageFilters, usage_days
from billing.services import allocate_credits_to_user, revoke_allocation, transfer_credits
from organizations.errors import OrganizationNotFound
from organizations.permissions import OrgAccess, org_access, org_admin_access
from organizations.selectors import user_by_id
from orgbilling.errors import ApplicationError
from orgbilling.money import millicredits_to_credits


def _access(request: HttpRequest, org_id: str) -> OrgAccess:
    try:
        return org_access(user=person(request), org_id=org_id)
    except OrganizationNotFound:
        raise Http404("No such organization.") from None


def _member_page(request: HttpRequest) -> tuple[int, str]:
    """The members table's page (1-based; anything else is page 1) and search text."""
    page = request.GET.get("page", "1")
    return (int(page) if page.isdigit() and int(page) > 0 else 1), request.GET.get("q", "").strip()[:150]


def _daily_chart(days: list[tuple[Any, int]], label: str) -> dict[str, Any]:
    return {
        "labels": [day.isoformat() for day, _ in days],
        "series": [{"label": label, "data": [millicredits_to_credits(mc) for _, mc in days]}],
        "unit": "credits",
    }


def _pool_chart(history: list[PoolDay]) -> dict[str, Any]:
    """The pool's total and used credits at the end of each day, drawn as two lines."""
    return {
        "type": "line",
        "labels": [entry.day.isoformat() for entry in history],
        "series": [
            {
                "label": "credits in the pool",
                "data": [millicredits_to_credits(e.total_credits) for e in history],
            },
            {"label": "credits used", "data": [millicredits_to_credits(e.used_credits) for e in history]},
        ],
        "unit": "credits",
    }


def _admin_context(
    request: HttpRequest, access: OrgAccess, errors: FormErrors, context: dict[str, Any]
) -> None:
    """What an admin's page adds: the members table (a page of it), usage, billing and settings."""
    page, search = _member_page(request)
    dashboard = org_dashboard(org=access.org, member_offset=(page - 1) * MEMBER_LIMIT, member_search=search)
    pages = max(1, -(-dashboard.member_count // MEMBER_LIMIT))
    context.update(
        member_page=page,
        member_pages=pages,
        member_search=search,
        member_first=(page - 1) * MEMBER_LIMIT + 1 if dashboard.members else 0,
        member_last=(page - 1) * MEMBER_LIMIT + len(dashboard.members),
        previous_page=page - 1 if page > 1 else None,
        next_page=page + 1 if page < pages else None,
    )
    if errors.form == "allocate" and any(m.user_id == errors.target for m in dashboard.members):
        context["unplaced_errors"] = []
        # Worked out here rather than per row in the template: 100 rows render in time.
        context["allocate_error_user"] = errors.target
        context["allocate_error_text"] = " ".join(
            message for messages_ in errors.fields.values() for message in messages_
        )
    usage = chosen_usage(request, access)
    context.update(
        usage=usage,
        plans=active_plans(),
        alerts=org_usage_alerts(org_id=access.org.id),
        topup=auto_topup_settings_of(org_id=access.org.id),
        grants=grant_rows(org_id=access.org.id, now=timezone.now()),
        checkout_return=request.GET.get("checkout", "") if request.method == "GET" else "",
        dashboard=dashboard,
        pool=dashboard.pool,
        chart_data=_daily_chart([(d.date, d.credits_used) for d in dashboard.daily_usage], "credits used"),
        pool_chart_data=_pool_chart(
            pool_history(
                org_id=access.org.id,
                used_credits=dashboard.pool.used_credits,
                daily_used=[(d.date, d.credits_used) for d in dashboard.daily_usage],
            )
        ),
        transferable=[m for m in dashboard.members if m.status == "active"],
        period_choices=Period.values,
    )


def _page(request: HttpRequest, access: OrgAccess, *, errors: FormErrors | None = None) -> HttpResponse:
    user = person(request)
    errors = errors or FormErrors()
    context: dict[str, Any] = {
        "org": access.org,
        "access": access,
        "errors": errors,
        "unplaced_errors": [],
        # Money-moving forms carry a key of this render: sent twice, they run once (once.py).
        "form_key": form_key(),
    }
    if errors.form == "allocate" or (errors.form and not access.is_admin and errors.form not in OWN_FORMS):
        # A refusal for a member the table does not show, or for a member who has no table
        # (a member posting an admin's form), goes at the top of the page.
        context["unplaced_errors"] = [
            message for messages_ in errors.fields.values() for message in messages_
        ]
    context.update(departments_and_requests(access=access, user=user))
    if access.is_admin:
        _admin_context(request, access, errors, context)
    else:
        start, end = dashboard_window(timezone.now())
        mine = usage_days(org_id=access.org.id, filters=UsageFilters(start=start, end=end, user_pk=user.pk))
        days = [(start.date() + timedelta(days=n), 0) for n in range((end.date() - start.date()).days + 1)]
        context.update(
            pool=pool_summary(org_id=access.org.id),
            allocation=allocations_visible_to(org=access.org, user=user, is_admin=False)
            .filter(is_active=True)
            .first(),
            chart_data=_daily_chart([(day, mine.get(day, (0, 0))[1]) for day, _ in days], "my credits used"),
        )
    status = errors.status if errors else 200
    if status == 200 and "usage" in context and context["usage"].errors:
        status = context["usage"].errors.status
    return render(request, "portal/org.html", context, status=status)


@require_GET
@portal_page
def org_billing(request: HttpRequest, org_id: str) -> HttpResponse:
    return _page(request, _access(request, org_id))


def admin_action(
    request: HttpRequest,
    org_id: str,
    *,
    form: str,
    target: str,
    serializer: type[serializers.Serializer],
    values: dict[str, Any],
    run: Callable[[OrgAccess, dict[str, Any]], Any],
    field_names: tuple[str, ...],
    done: str,
    authorize: Callable[..., OrgAccess] = org_admin_access,
) -> HttpResponse:
    """Validate with the API's ``serializer``, check the API's access (``authorize``), run the
    API's service once per rendered form; a refusal re-renders the page with its message."""
    access = _access(request, org_id)
    shown = {name: str(value) for name, value in values.items()}
    data = serializer(data=values)
    if not data.is_valid():
        return _page(request, access, errors=validation_errors(form, data.errors, shown, target))
    try:
        admin = authorize(user=person(request), org_id=org_id)
        ran = run_once(
            user=person(request),
            key=request.POST.get(FORM_KEY, ""),
            path=request.path,
            values=shown,
            run=lambda: run(admin, dict(data.validated_data)),
        )
    except ApplicationError as refusal:
        return _page(request, access, errors=refusal_errors(form, refusal, shown, field_names, target))
    messages.success(request, done if ran else "Already done: that form was sent once.")
    return redirect("portal:org", org_id=access.org.id)


@require_POST
@portal_page
def allocate(request: HttpRequest, org_id: str) -> HttpResponse:
    user_id = request.POST.get("user_id", "")

    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        allocate_credits_to_user(
            org_id=access.org.id,
            user=user_by_id(data["user_id"]),
            amount=data["credits"],
            actor=person(request),
            period=data["period_change"],
        )

    # Empty period fields are left out: the API's "omit to keep it".
    return admin_action(
        request,
        org_id,
        form="allocate",
        target=user_id,
        serializer=AllocateInput,
        values=form_values(
            user_id=user_id,
            credits=request.POST.get("credits", ""),
            period=request.POST.get("period", ""),
            period_mode=request.POST.get("period_mode", ""),
            rollover_cap_credits=request.POST.get("rollover_cap_credits", ""),
        ),
        run=run,
        field_names=("credits", "user_id", "period", "period_mode", "rollover_cap_credits"),
        done=f"Credits allocated to {user_id}.",
    )


@require_POST
@portal_page
def transfer(request: HttpRequest, org_id: str) -> HttpResponse:
    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        transfer_credits(
            org_id=access.org.id,
            from_user=user_by_id(data["from_user_id"]),
            to_user=user_by_id(data["to_user_id"]),
            amount=data["credits"],
            actor=person(request),
        )

    return admin_action(
        request,
        org_id,
        form="transfer",
        target="",
        serializer=TransferInput,
        values=form_values(
            from_user_id=request.POST.get("from_user_id", ""),
            to_user_id=request.POST.get("to_user_id", ""),
            credits=request.POST.get("credits", ""),
        ),
        run=run,
        field_names=("credits", "from_user_id", "to_user_id"),
        done="Credits transferred.",
    )


class _MemberInput(serializers.Serializer):
    user_id = serializers.CharField(max_length=150)


@require_POST
@portal_page
def revoke(request: HttpRequest, org_id: str) -> HttpResponse:
    user_id = request.POST.get("user_id", "")

    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        revoke_allocation(org_id=access.org.id, user=user_by_id(data["user_id"]), actor=person(request))

    return admin_action(
        request,
        org_id,
        form="allocate",
        target=user_id,
        serializer=_MemberInput,
        values=form_values(user_id=user_id),
        run=run,
        field_names=("user_id",),
        done=f"The allocation of {user_id} is revoked: its unused credits are back in the pool.",
    )
