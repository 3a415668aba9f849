"""Membership management: ``/api/v1/organizations/{org_id}/members[/{user_id}]``.

Org admins and system admins only. Plain members get 403 (the member directory, with
emails, is not theirs to read); anyone who cannot see the org gets 404.
"""

import django_filters
from django.db.models import QuerySet
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from organizations.api.common import caller
from organizations.api.lookups import org_members
from organizations.api.serializers.invitations import InvitationSerializer
from organizations.api.serializers.members import (
    ORGANIZATION_MEMBER_REMOVE_SCHEMA,
    ORGANIZATION_MEMBER_UPDATE_SCHEMA,
    ORGANIZATION_MEMBERS_ADD_SCHEMA,
    ORGANIZATION_MEMBERS_LIST_SCHEMA,
    OrgMemberAddInput,
    OrgMemberRemovedSerializer,
    OrgMemberSerializer,
    OrgMemberUpdateInput,
)
from organizations.models import OrganizationMember
from organizations.permissions import org_admin_access
from organizations.selectors import user_by_id
from organizations.services import invite_or_add_member, remove_member, update_member


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

    @ORGANIZATION_MEMBERS_LIST_SCHEMA
    def get(self, request: Request, org_id: str) -> Response:
        members = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(members)
        return self.get_paginated_response(OrgMemberSerializer(page, many=True).data)

    @ORGANIZATION_MEMBERS_ADD_SCHEMA
    def post(self, request: Request, org_id: str) -> Response:
        actor = caller(request)
        access = org_admin_access(user=actor, org_id=org_id)
        data = OrgMemberAddInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        added = invite_or_add_member(
            org_id=access.org.id,
            actor=actor,
            role=values["role"],
            user_id=values.get("user_id"),
            email=values.get("email"),
            status=values["status"],
        )
        if isinstance(added, OrganizationMember):
            return Response(OrgMemberSerializer(added).data, status=status.HTTP_201_CREATED)
        return Response(InvitationSerializer(added).data, status=status.HTTP_201_CREATED)


class OrgMemberView(APIView):
    @ORGANIZATION_MEMBER_UPDATE_SCHEMA
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

    @ORGANIZATION_MEMBER_REMOVE_SCHEMA
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
