"""Membership management: ``/api/v1/organizations/{org_id}/members[/{user_id}]``.

Org admins and system admins only. Plain members get 403 (the member directory, with
emails, is not theirs to read); anyone who cannot see the org gets 404.
"""

import django_filters
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from organizations.api.common import caller
from organizations.api.lookups import org_members, user_by_email
from organizations.api.serializers import (
    InvitationSerializer,
    OrgMemberAddInput,
    OrgMemberRemovedSerializer,
    OrgMemberSerializer,
    OrgMemberUpdateInput,
)
from organizations.invitations import invite_member
from organizations.models import OrganizationMember
from organizations.permissions import acts_as_system_admin, org_admin_access
from organizations.selectors import user_by_id
from organizations.services import add_member, remove_member, update_member
from orgbilling.api.schema import error_responses, example
from orgbilling.errors import Forbidden

TAGS = ["members"]

ORG_ID_PARAM = OpenApiParameter(
    "org_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Organization id (`org_abc123`)"
)
USER_ID_PARAM = OpenApiParameter(
    "user_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The member's user id (OIDC `sub`)"
)

_MEMBER_EXAMPLE = {
    "user_id": "user_456",
    "email": "grace@example.com",
    "first_name": "Grace",
    "last_name": "Hopper",
    "role": "member",
    "status": "active",
    "joined_at": "2026-01-05T09:30:00Z",
}


_ADD_RESULT = PolymorphicProxySerializer(
    component_name="OrgMemberAddResult",
    serializers=[InvitationSerializer, OrgMemberSerializer],
    resource_type_field_name=None,
)

INVITATION_EXAMPLE = {
    "invitation_id": "0b7f6f0e-2d7c-4b36-9a55-0d3f4f1e8c21",
    "org_id": "org_abc123",
    "email": "grace@example.com",
    "user_id": None,
    "role": "member",
    "status": "invited",
    "invited_by": "user_123",
    "invited_at": "2026-01-05T09:30:00Z",
    "expires_at": "2026-01-19T09:30:00Z",
}


class MemberFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[
            (OrganizationMember.Status.ACTIVE.value, "Active"),
            (OrganizationMember.Status.SUSPENDED.value, "Suspended"),
        ]
    )
    role = django_filters.ChoiceFilter(choices=OrganizationMember.Role.choices)

    class Meta:
        model = OrganizationMember
        fields = ["status", "role"]


class OrgMembersView(GenericAPIView):
    serializer_class = OrgMemberSerializer
    filterset_class = MemberFilter

    def get_queryset(self) -> QuerySet[OrganizationMember]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return OrganizationMember.objects.none()
        access = org_admin_access(user=caller(self.request), org_id=self.kwargs["org_id"])
        return org_members(org_id=access.org.id)

    @extend_schema(
        operation_id="organization_members_list",
        tags=TAGS,
        summary="List the organization's members",
        description=(
            "Org admins and system admins; filter with `?status=` and `?role=`. Pending "
            "invitations are not members: see `GET .../invitations`."
        ),
        parameters=[ORG_ID_PARAM],
        responses={200: OrgMemberSerializer(many=True), **error_responses(400, 401, 403, 404, 429)},
        examples=[
            example(
                "members",
                {"count": 1, "next": None, "previous": None, "results": [_MEMBER_EXAMPLE]},
            )
        ],
    )
    def get(self, request: Request, org_id: str) -> Response:
        members = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(members)
        return self.get_paginated_response(OrgMemberSerializer(page, many=True).data)

    @extend_schema(
        operation_id="organization_members_add",
        tags=TAGS,
        summary="Invite a user or an e-mail address to the organization",
        description=(
            "Name the invitee by exactly one of `user_id` and `email`; `role` is `member` unless "
            "given. Answers 201 with the invitation (`status: invited`): the invitee is mailed "
            "and becomes a member only when they accept (`POST /api/v1/me/invitations/{org_id}/"
            "accept`). An address works whether or not it has an account yet, and the answer is "
            "the same either way. Re-inviting refreshes the deadline. A user who already is an "
            "active or suspended member → 409 `already_member`; an unknown `user_id` → 404 "
            "`user_not_found`. System admins may add an existing user directly with "
            '`"status": "active"` (audited; answers the member); anyone else → 403.'
        ),
        parameters=[ORG_ID_PARAM],
        request=OrgMemberAddInput,
        responses={201: _ADD_RESULT, **error_responses(400, 401, 403, 404, 409, 429)},
        examples=[
            example("by email", {"email": "grace@example.com", "role": "member"}, request=True),
            example("by user id", {"user_id": "user_456", "role": "admin"}, request=True),
            example("direct add (system admins)", {"user_id": "user_456", "status": "active"}, request=True),
            example("invited", INVITATION_EXAMPLE, status=201),
        ],
    )
    def post(self, request: Request, org_id: str) -> Response:
        actor = caller(request)
        access = org_admin_access(user=actor, org_id=org_id)
        data = OrgMemberAddInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["status"] == OrganizationMember.Status.ACTIVE:
            if not acts_as_system_admin(actor):
                raise Forbidden(
                    "Only system admins may add an active member directly; invite the user instead.",
                    details={"org_id": org_id},
                )
            user = user_by_id(values["user_id"]) if "user_id" in values else user_by_email(values["email"])
            member = add_member(
                org_id=access.org.id, user=user, role=values["role"], actor=actor, actor_label="direct-add"
            )
            return Response(OrgMemberSerializer(member).data, status=status.HTTP_201_CREATED)
        invitation = invite_member(
            org_id=access.org.id,
            user=user_by_id(values["user_id"]) if "user_id" in values else None,
            email=values.get("email"),
            role=values["role"],
            actor=actor,
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class OrgMemberView(APIView):
    @extend_schema(
        operation_id="organization_member_update",
        tags=TAGS,
        summary="Change a member's role, suspend or reactivate them",
        description=(
            "`role`: `admin` or `member`; `status`: `active` or `suspended` (a suspended member "
            "keeps their allocation but cannot spend it). Demoting or suspending the last active "
            "admin → 409 `last_admin`. Not a member → 404 `member_not_found`."
        ),
        parameters=[ORG_ID_PARAM, USER_ID_PARAM],
        request=OrgMemberUpdateInput,
        responses={200: OrgMemberSerializer, **error_responses(400, 401, 403, 404, 409, 429)},
        examples=[
            example("promote", {"role": "admin"}, request=True),
            example("suspend", {"status": "suspended"}, request=True),
            example("updated", {**_MEMBER_EXAMPLE, "status": "suspended"}),
        ],
    )
    def patch(self, request: Request, org_id: str, user_id: str) -> Response:
        actor = caller(request)
        access = org_admin_access(user=actor, org_id=org_id)
        data = OrgMemberUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        member = update_member(
            org_id=access.org.id,
            user=user_by_id(user_id),
            role=data.validated_data.get("role"),
            status=data.validated_data.get("status"),
            actor=actor,
        )
        return Response(OrgMemberSerializer(member).data)

    @extend_schema(
        operation_id="organization_member_remove",
        tags=TAGS,
        summary="Remove a member; their unused allocation returns to the pool",
        description=(
            "In one transaction: revoke the member's active allocation (unused credits return to "
            "the pool) and delete the membership. Credits on hold for calls in flight → 409 "
            "`allocation_has_active_holds` (retry shortly); the last active admin → 409 "
            "`last_admin`; nothing changes on a refusal."
        ),
        parameters=[ORG_ID_PARAM, USER_ID_PARAM],
        request=None,
        responses={200: OrgMemberRemovedSerializer, **error_responses(401, 403, 404, 409, 429)},
        examples=[
            example(
                "removed",
                {"removed": True, "org_id": "org_abc123", "user_id": "user_456", "returned_to_pool": 750.5},
            )
        ],
    )
    def delete(self, request: Request, org_id: str, user_id: str) -> Response:
        actor = caller(request)
        access = org_admin_access(user=actor, org_id=org_id)
        removal = remove_member(org_id=access.org.id, user=user_by_id(user_id), actor=actor)
        body = {
            "removed": True,
            "org_id": removal.org_id,
            "user_id": removal.user.username,
            "returned_to_pool": removal.returned_to_pool,
        }
        return Response(OrgMemberRemovedSerializer(body).data)
