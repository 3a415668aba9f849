"""The org page's member management for admins: invite a member by e-mail, set a member's
allocated total, remove a member. Each validates with the API's input serializer and calls the
API's service (``POST /organizations/{id}/members``, ``PATCH .../allocations/{user_id}``,
``DELETE /organizations/{id}/members/{user_id}``) through the org page's admin action: a member
gets the API's 403 message, another org is the 404 page, a refusal changes nothing."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST
from rest_framework import serializers

from billing.api.serializers.allocations import AllocationAdjustInput
from billing.portal.common import form_values, person, portal_page
from billing.portal.org import admin_action
from billing.services import adjust_allocation
from organizations.api.serializers.members import OrgMemberAddInput
from organizations.permissions import OrgAccess
from organizations.selectors import user_by_id
from organizations.services import invite_or_add_member, remove_member


class _AdjustInput(AllocationAdjustInput):
    user_id = serializers.CharField(max_length=150)


class _RemoveInput(serializers.Serializer):
    user_id = serializers.CharField(max_length=150)


@require_POST
@portal_page
def invite(request: HttpRequest, org_id: str) -> HttpResponse:
    email = request.POST.get("email", "").strip()

    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        invite_or_add_member(
            org_id=access.org.id,
            actor=person(request),
            role=data["role"],
            email=data["email"],
            status=data["status"],
        )

    values = {"email": email} if email else {}
    values["role"] = request.POST.get("role", "member")
    return admin_action(
        request,
        org_id,
        form="invite",
        target="",
        serializer=OrgMemberAddInput,
        values=values,
        run=run,
        field_names=("email", "role"),
        done=f"{email} is invited: they accept on their portal page.",
    )


@require_POST
@portal_page
def adjust(request: HttpRequest, org_id: str) -> HttpResponse:
    user_id = request.POST.get("user_id", "")

    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        adjust_allocation(
            org_id=access.org.id,
            user=user_by_id(data["user_id"]),
            allocated=data["credits"],
            actor=person(request),
        )

    return admin_action(
        request,
        org_id,
        form="adjust",
        target="",
        serializer=_AdjustInput,
        values=form_values(user_id=user_id, credits=request.POST.get("credits", "")),
        run=run,
        field_names=("credits", "user_id"),
        done=f"The allocation of {user_id} is set.",
    )


@require_POST
@portal_page
def remove(request: HttpRequest, org_id: str) -> HttpResponse:
    user_id = request.POST.get("user_id", "")

    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        remove_member(org_id=access.org.id, user=user_by_id(data["user_id"]), actor=person(request))

    return admin_action(
        request,
        org_id,
        form="remove",
        target="",
        serializer=_RemoveInput,
        values=form_values(user_id=user_id),
        run=run,
        field_names=("user_id",),
        done=f"{user_id} is removed: their unused credits are back in the pool.",
    )
