"""The org page's department and credit-request forms. A member asks for credits (and cancels
their pending request); admins and department managers approve or decline the requests they
may decide; admins create departments and rename or resize them. Each validates with the API's
input serializer and calls the API's service under the API's access rule, through the org
page's ``admin_action``: a refusal is shown on the page in the API's words and changes nothing."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST
from rest_framework import serializers

from billing.api.serializers.credit_requests import CreditRequestDecisionInput, CreditRequestInput
from billing.api.serializers.departments import (
    DepartmentCreateInput,
    DepartmentIdField,
    DepartmentUpdateInput,
)
from billing.permissions import credit_request_decider_access
from billing.portal.common import form_values, person, portal_page
from billing.portal.org import admin_action
from billing.services import create_department, update_department
from billing.services.credit_requests import (
    approve_credit_request,
    cancel_credit_request,
    decline_credit_request,
    request_credits,
)
from organizations.permissions import OrgAccess, org_access


class _DecisionInput(CreditRequestDecisionInput):
    request_id = DepartmentIdField()  # a positive whole number, like a department id


class _RequestIdInput(serializers.Serializer):
    request_id = DepartmentIdField()


class _DepartmentEditInput(DepartmentUpdateInput):
    department_id = DepartmentIdField()


def _whole(text: str) -> Any:
    """A form's id field as the API's JSON would carry it: a whole number, or the text."""
    text = text.strip()
    return int(text) if text.isdigit() else text


@require_POST
@portal_page
def ask(request: HttpRequest, org_id: str) -> HttpResponse:
    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        request_credits(
            org_id=access.org.id, requester=person(request), credits=data["credits"], reason=data["reason"]
        )

    values = form_values(credits=request.POST.get("credits", ""))
    values["reason"] = request.POST.get("reason", "")
    return admin_action(
        request,
        org_id,
        form="request",
        target="",
        serializer=CreditRequestInput,
        values=values,
        run=run,
        field_names=("credits", "reason"),
        done="Your request is sent: the organization's admins (and your department's manager) are told.",
        authorize=org_access,
    )


@require_POST
@portal_page
def cancel(request: HttpRequest, org_id: str) -> HttpResponse:
    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        cancel_credit_request(org_id=access.org.id, request_id=data["request_id"], actor=person(request))

    return admin_action(
        request,
        org_id,
        form="request",
        target="",
        serializer=_RequestIdInput,
        values={"request_id": _whole(request.POST.get("request_id", ""))},
        run=run,
        field_names=(),
        done="Your request is cancelled.",
        authorize=org_access,
    )


def _decide(request: HttpRequest, org_id: str, *, approve: bool) -> HttpResponse:
    decide = approve_credit_request if approve else decline_credit_request

    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        _, deciders = credit_request_decider_access(user=person(request), org_id=access.org.id)
        decide(
            org_id=access.org.id,
            request_id=data["request_id"],
            actor=person(request),
            deciders=deciders,
            note=data.get("note", ""),
        )

    request_id = request.POST.get("request_id", "")
    return admin_action(
        request,
        org_id,
        form="decide",
        target=request_id,
        serializer=_DecisionInput,
        values={"request_id": _whole(request_id), "note": request.POST.get("note", "")},
        run=run,
        field_names=("note",),
        done=f"Request {request_id} {'approved: the credits are allocated' if approve else 'declined'}.",
        authorize=lambda *, user, org_id: credit_request_decider_access(user=user, org_id=org_id)[0],
    )


@require_POST
@portal_page
def approve(request: HttpRequest, org_id: str) -> HttpResponse:
    return _decide(request, org_id, approve=True)


@require_POST
@portal_page
def decline(request: HttpRequest, org_id: str) -> HttpResponse:
    return _decide(request, org_id, approve=False)


@require_POST
@portal_page
def department_create(request: HttpRequest, org_id: str) -> HttpResponse:
    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        create_department(
            org_id=access.org.id, name=data["name"], budget=data["budget_credits"], actor=person(request)
        )

    name = request.POST.get("name", "")
    values = form_values(budget_credits=request.POST.get("budget_credits", ""))
    values["name"] = name
    return admin_action(
        request,
        org_id,
        form="department",
        target="",
        serializer=DepartmentCreateInput,
        values=values,
        run=run,
        field_names=("name", "budget_credits"),
        done=f"Department {name.strip()} created.",
    )


@require_POST
@portal_page
def department_edit(request: HttpRequest, org_id: str) -> HttpResponse:
    department_id = request.POST.get("department_id", "")

    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        update_department(
            org_id=access.org.id,
            department_id=data["department_id"],
            name=data.get("name"),
            budget=data.get("budget_credits"),
            actor=person(request),
        )

    values = form_values(
        budget_credits=request.POST.get("budget_credits", ""), name=request.POST.get("name", "")
    )
    values["department_id"] = _whole(department_id)
    if "name" in values:
        values["name"] = request.POST["name"]
    return admin_action(
        request,
        org_id,
        form="department",
        target=department_id,
        serializer=_DepartmentEditInput,
        values=values,
        run=run,
        field_names=("name", "budget_credits"),
        done="Department saved.",
    )
