"""The admin actions that move credits, each behind a confirmation form (shared by the billing
and organizations admins).

An action's first POST (from the changelist) renders its form; the form comes back with
``apply`` and the action calls one ledger service (``billing.services``). A refusal becomes an
admin error message and changes nothing. Nothing here writes a balance itself.
"""

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from billing.admin.forms import (
    AddCreditsForm,
    AllocateCreditsForm,
    DepartmentBudgetForm,
    GrantIndividualCreditsForm,
    PromotionalCreditsForm,
)
from billing.models import CreditGrant, OrganizationCreditPool, UserCreditAllocation
from billing.money import millicredits_to_credits
from billing.permissions import Deciders
from billing.services import (
    add_credits_to_pool,
    allocate_credits_to_user,
    delete_department,
    grant_individual_credits,
    revoke_allocation,
    update_department,
)
from billing.services.credit_requests import approve_credit_request, decline_credit_request
from organizations.models import Organization, User
from orgbilling.errors import ApplicationError

ACTION_TEMPLATE = "admin/billing/credit_action.html"
REVOKE_TEMPLATE = "admin/billing/revoke_allocations.html"
# Recorded on every audit event an admin action writes, next to the acting staff user.
ADMIN_ACTOR_LABEL = "admin"


def can_manage_credits(request: HttpRequest) -> bool:
    """Who may run the credit actions: staff holding change rights on pools and allocations
    (the admin itself never edits those rows; the permissions stand for "may move credits")."""
    return request.user.has_perms(
        ["billing.change_organizationcreditpool", "billing.change_usercreditallocation"]
    )


class ManagesCreditsMixin:
    """For admins whose actions move credits (``allowed_permissions = ("manage_credits",)``)."""

    def has_manage_credits_permission(self, request: HttpRequest) -> bool:
        return can_manage_credits(request)


def _actor(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):  # the admin only serves authenticated staff
        raise TypeError("admin actions need an authenticated user")
    return user


def _report_refusal(modeladmin: admin.ModelAdmin, request: HttpRequest, error: ApplicationError) -> None:
    modeladmin.message_user(request, f"{error.message} ({error.code})", messages.ERROR)


def _render(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    template: str,
    action: str,
    title: str,
    selected: Sequence[Any],
    form: forms.Form | None = None,
    **extra: Any,
) -> TemplateResponse:
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "form": form,
        "action_name": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "selected": selected,
        "media": modeladmin.media + (form.media if form is not None else forms.Media()),
        **extra,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, template, context)


def _single_org(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> Organization | None:
    """The one organization an action applies to. Works for organizations and pools alike:
    a pool's primary key is its organization's id."""
    org_ids = list(queryset.values_list("pk", flat=True)[:2])
    if len(org_ids) != 1:
        modeladmin.message_user(request, "Select exactly one organization for this action.", messages.WARNING)
        return None
    return Organization.objects.get(pk=org_ids[0])


def _pool_summary(org: Organization) -> dict[str, Decimal] | None:
    pool = OrganizationCreditPool.objects.filter(org=org).first()
    if pool is None:
        return None
    return {
        "total": millicredits_to_credits(pool.total_credits),
        "allocated": millicredits_to_credits(pool.allocated_credits),
        "used": millicredits_to_credits(pool.used_credits),
        "available": millicredits_to_credits(pool.available_credits),
    }


def _grant_to_pool(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    form_class: type[forms.Form],
    action: str,
    verb: str,
    grant_terms: Callable[[dict[str, Any]], dict[str, Any]],
    done: Callable[[dict[str, Any], str], str],
) -> TemplateResponse | None:
    """The pool actions (add credits, grant promotional credits): one org, a form, then
    ``add_credits_to_pool`` with the form's ``credits`` and ``grant_terms(data)``; ``done(data, org_id)``
    says what was added in the success message."""
    org = _single_org(modeladmin, request, queryset)
    if org is None:
        return None
    form = form_class(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        data = form.cleaned_data
        try:
            change = add_credits_to_pool(
                org_id=org.pk,
                amount=data["credits"],
                actor=_actor(request),
                actor_label=ADMIN_ACTOR_LABEL,
                **grant_terms(data),
            )
        except ApplicationError as error:
            _report_refusal(modeladmin, request, error)
        else:
            modeladmin.message_user(
                request,
                f"{done(data, org.pk)}: total {millicredits_to_credits(change.pool.total_credits)}, "
                f"available {millicredits_to_credits(change.pool.available_credits)} credits.",
                messages.SUCCESS,
            )
            return None
    return _render(
        modeladmin,
        request,
        template=ACTION_TEMPLATE,
        action=action,
        title=f"{verb} credits to the pool of {org}",
        selected=[org.pk],
        form=form,
        org=org,
        pool=_pool_summary(org),
        submit_label=f"{verb} credits",
    )


@admin.action(description="Add credits to pool", permissions=["manage_credits"])
def add_credits(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> TemplateResponse | None:
    return _grant_to_pool(
        modeladmin,
        request,
        queryset,
        form_class=AddCreditsForm,
        action="add_credits",
        verb="Add",
        grant_terms=lambda data: {
            "purchase_amount": data["purchase_amount"],
            "description": data["description"],
        },
        done=lambda data, org_id: f"Added {millicredits_to_credits(data['credits'])} credits to {org_id}",
    )


def _promotion_added(data: dict[str, Any], org_id: str) -> str:
    expiry = f", expiring {data['expires_at']:%Y-%m-%d %H:%M} UTC" if data["expires_at"] else ""
    return f"Granted {millicredits_to_credits(data['credits'])} promotional credits to {org_id}{expiry}"


@admin.action(description="Grant promotional credits", permissions=["manage_credits"])
def grant_promotional_credits(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> TemplateResponse | None:
    return _grant_to_pool(
        modeladmin,
        request,
        queryset,
        form_class=PromotionalCreditsForm,
        action="grant_promotional_credits",
        verb="Grant promotional",
        grant_terms=lambda data: {
            "description": data["description"] or "Promotional credits",
            "source": CreditGrant.Source.PROMOTION,
            "expires_at": data["expires_at"],
            "priority": data["priority"],
        },
        done=_promotion_added,
    )


@admin.action(description="Allocate credits to a member", permissions=["manage_credits"])
def allocate_credits(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> TemplateResponse | None:
    org = _single_org(modeladmin, request, queryset)
    if org is None:
        return None
    form = AllocateCreditsForm(request.POST if "apply" in request.POST else None, org=org)
    if form.is_valid():
        data = form.cleaned_data
        try:
            change = allocate_credits_to_user(
                org_id=org.pk,
                user=data["user"],
                amount=data["credits"],
                expires_at=data["expires_at"],
                actor=_actor(request),
                actor_label=ADMIN_ACTOR_LABEL,
            )
        except ApplicationError as error:
            _report_refusal(modeladmin, request, error)
        else:
            allocation_now = millicredits_to_credits(change.allocation.allocated_credits)
            modeladmin.message_user(
                request,
                f"Allocated {millicredits_to_credits(data['credits'])} credits to {data['user']} in "
                f"{org.pk}: their allocation is {allocation_now}, "
                f"the pool has {millicredits_to_credits(change.pool.available_credits)} available.",
                messages.SUCCESS,
            )
            return None
    return _render(
        modeladmin,
        request,
        template=ACTION_TEMPLATE,
        action="allocate_credits",
        title=f"Allocate credits in {org}",
        selected=[org.pk],
        form=form,
        org=org,
        pool=_pool_summary(org),
        submit_label="Allocate credits",
    )


def _revocation_row(allocation: UserCreditAllocation) -> dict[str, Any]:
    return {
        "allocation": allocation,
        "allocated": millicredits_to_credits(allocation.allocated_credits),
        "used": millicredits_to_credits(allocation.used_credits),
        "reserved": millicredits_to_credits(allocation.reserved_credits),
        "returned": millicredits_to_credits(allocation.allocated_credits - allocation.used_credits),
        "held": allocation.reserved_credits > 0,
    }


@admin.action(
    description="Revoke allocation (unused credits return to the pool)", permissions=["manage_credits"]
)
def revoke_allocations(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> TemplateResponse | None:
    allocations: list[UserCreditAllocation] = list(
        queryset.select_related("org", "user").order_by("org_id", "pk")
    )
    if "apply" not in request.POST:
        return _render(
            modeladmin,
            request,
            template=REVOKE_TEMPLATE,
            action="revoke_allocations",
            title="Revoke allocations",
            selected=[allocation.pk for allocation in allocations],
            rows=[_revocation_row(allocation) for allocation in allocations],
            submit_label="Yes, revoke",
        )
    actor = _actor(request)
    for allocation in allocations:
        # The service revokes the member's active allocation in the org, so act only while the
        # selected row is still that one.
        if not UserCreditAllocation.objects.filter(pk=allocation.pk, is_active=True).exists():
            modeladmin.message_user(request, f"{allocation} is not active; skipped.", messages.WARNING)
            continue
        try:
            change = revoke_allocation(
                org_id=allocation.org_id, user=allocation.user, actor=actor, actor_label=ADMIN_ACTOR_LABEL
            )
        except ApplicationError as error:
            modeladmin.message_user(request, f"{allocation}: {error.message} ({error.code})", messages.ERROR)
        else:
            modeladmin.message_user(
                request,
                f"Revoked {allocation}: {millicredits_to_credits(change.returned_to_pool)} credits "
                f"returned to the pool of {allocation.org_id}.",
                messages.SUCCESS,
            )
    return None


@admin.action(description="Set the department's budget", permissions=["manage_credits"])
def set_department_budget(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> TemplateResponse | None:
    departments = list(queryset.select_related("org")[:2])
    if len(departments) != 1:
        modeladmin.message_user(request, "Select exactly one department for this action.", messages.WARNING)
        return None
    department = departments[0]
    form = DepartmentBudgetForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        try:
            changed = update_department(
                org_id=department.org_id,
                department_id=department.pk,
                budget=form.cleaned_data["budget"],
                actor=_actor(request),
                actor_label=ADMIN_ACTOR_LABEL,
            )
        except ApplicationError as error:
            _report_refusal(modeladmin, request, error)
        else:
            modeladmin.message_user(
                request,
                f"{changed.name}: budget {millicredits_to_credits(changed.budget_credits)} credits, "
                f"{millicredits_to_credits(changed.allocated_credits)} of them allocated.",
                messages.SUCCESS,
            )
            return None
    return _render(
        modeladmin,
        request,
        template=ACTION_TEMPLATE,
        action="set_department_budget",
        title=f"Set the budget of {department.name} ({department.org_id})",
        selected=[department.pk],
        form=form,
        org=department.org,
        pool=_pool_summary(department.org),
        submit_label="Set budget",
    )


@admin.action(
    description="Delete department (its unallocated budget returns to the pool)",
    permissions=["manage_credits"],
)
def delete_departments(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    actor = _actor(request)
    for department in queryset.filter(deleted_at__isnull=True).order_by("org_id", "pk"):
        try:
            result = delete_department(
                org_id=department.org_id,
                department_id=department.pk,
                actor=actor,
                actor_label=ADMIN_ACTOR_LABEL,
            )
        except ApplicationError as error:
            modeladmin.message_user(request, f"{department}: {error.message} ({error.code})", messages.ERROR)
        else:
            modeladmin.message_user(
                request,
                f"Deleted {department}: {millicredits_to_credits(result.returned_to_pool)} credits "
                f"returned to the pool of {department.org_id}.",
                messages.SUCCESS,
            )


# Staff decide any organization's requests, like its admins (never their own: the service's rule).
_STAFF = Deciders(department_ids=None)


def _decide_requests(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, *, approve: bool
) -> None:
    actor = _actor(request)
    decide = approve_credit_request if approve else decline_credit_request
    for credit_request in queryset.order_by("pk"):
        try:
            decide(org_id=credit_request.org_id, request_id=credit_request.pk, actor=actor, deciders=_STAFF)
        except ApplicationError as error:
            modeladmin.message_user(
                request, f"{credit_request}: {error.message} ({error.code})", messages.ERROR
            )
        else:
            modeladmin.message_user(
                request,
                f"Request #{credit_request.pk} {'approved' if approve else 'declined'}: "
                f"{millicredits_to_credits(credit_request.credits)} credits for "
                f"{credit_request.requester.username}.",
                messages.SUCCESS,
            )


@admin.action(description="Approve (raise the requester's allocation)", permissions=["manage_credits"])
def approve_credit_requests(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _decide_requests(modeladmin, request, queryset, approve=True)


@admin.action(description="Decline", permissions=["manage_credits"])
def decline_credit_requests(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _decide_requests(modeladmin, request, queryset, approve=False)


@admin.action(description="Grant individual credits", permissions=["manage_credits"])
def grant_individual_credits_action(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> TemplateResponse | None:
    """Grant credits to one user's own balance (``grant_individual_credits``): a ledger entry
    and an audit event with the reason."""
    user_ids = list(queryset.values_list("pk", flat=True)[:2])
    if len(user_ids) != 1:
        modeladmin.message_user(request, "Select exactly one balance for this action.", messages.WARNING)
        return None
    user = User.objects.get(pk=user_ids[0])
    form = GrantIndividualCreditsForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        data = form.cleaned_data
        try:
            change = grant_individual_credits(
                user=user,
                amount=data["credits"],
                reason=data["reason"],
                actor=_actor(request),
                actor_label=ADMIN_ACTOR_LABEL,
            )
        except ApplicationError as error:
            _report_refusal(modeladmin, request, error)
        else:
            modeladmin.message_user(
                request,
                f"Granted {millicredits_to_credits(data['credits'])} credits to {user.username}: their "
                f"individual total is {millicredits_to_credits(change.balance.total_credits)} credits.",
                messages.SUCCESS,
            )
            return None
    return _render(
        modeladmin,
        request,
        template=ACTION_TEMPLATE,
        action="grant_individual_credits_action",
        title=f"Grant individual credits to {user.username}",
        selected=[user.pk],
        form=form,
        submit_label="Grant credits",
    )
