"""Invitations and leaving: the org admin's ``/api/v1/organizations/{org_id}/invitations[/{id}]``
and the invitee's ``/api/v1/me/invitations[/{org_id}/accept|decline]`` and
``/api/v1/me/organizations/{org_id}/leave``."""

import uuid

from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from organizations.api.common import caller
from organizations.api.lookups import my_invitations, org_invitations
from organizations.api.serializers.invitations import (
    ME_INVITATION_ACCEPT_SCHEMA,
    ME_INVITATION_DECLINE_SCHEMA,
    ME_INVITATIONS_LIST_SCHEMA,
    ME_ORGANIZATION_LEAVE_SCHEMA,
    ORGANIZATION_INVITATION_REVOKE_SCHEMA,
    ORGANIZATION_INVITATIONS_LIST_SCHEMA,
    InvitationDeclinedSerializer,
    InvitationRevokedSerializer,
    InvitationSerializer,
    LeftOrganizationSerializer,
    MyInvitationSerializer,
)
from organizations.api.serializers.me import MeOrganizationSerializer
from organizations.errors import InvitationNotFound, OrganizationNotFound
from organizations.models import OrganizationMember, User
from organizations.permissions import in_api_key_scope, org_admin_access
from organizations.services import (
    accept_invitation,
    decline_invitation,
    leave_organization,
    revoke_invitation,
)


def _own_org(user: User, org_id: str, missing: type[OrganizationNotFound | InvitationNotFound]) -> str:
    """``org_id`` when the caller's credentials reach it; an org-scoped API key reaches no other."""
    if not in_api_key_scope(user, org_id):
        raise missing(details={"org_id": org_id})
    return org_id


class OrgInvitationsView(GenericAPIView):
    serializer_class = InvitationSerializer
    queryset = OrganizationMember.objects.none()  # for the schema: the rows come from org_invitations

    @ORGANIZATION_INVITATIONS_LIST_SCHEMA
    def get(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        page = self.paginate_queryset(org_invitations(org_id=access.org.id))  # type: ignore[arg-type]
        return self.get_paginated_response(InvitationSerializer(page, many=True).data)


class OrgInvitationView(APIView):
    @ORGANIZATION_INVITATION_REVOKE_SCHEMA
    def delete(self, request: Request, org_id: str, invitation_id: uuid.UUID) -> Response:
        actor = caller(request)
        access = org_admin_access(user=actor, org_id=org_id)
        revoke_invitation(org_id=access.org.id, invitation_id=invitation_id, actor=actor)
        return Response(InvitationRevokedSerializer({"revoked": True, "invitation_id": invitation_id}).data)


class MyInvitationsView(APIView):
    @ME_INVITATIONS_LIST_SCHEMA
    def get(self, request: Request) -> Response:
        return Response(MyInvitationSerializer(my_invitations(user=caller(request)), many=True).data)


class MyInvitationAcceptView(APIView):
    @ME_INVITATION_ACCEPT_SCHEMA
    def post(self, request: Request, org_id: str) -> Response:
        user = caller(request)
        member = accept_invitation(user=user, org_id=_own_org(user, org_id, InvitationNotFound))
        return Response(MeOrganizationSerializer(member).data)


class MyInvitationDeclineView(APIView):
    @ME_INVITATION_DECLINE_SCHEMA
    def post(self, request: Request, org_id: str) -> Response:
        user = caller(request)
        decline_invitation(user=user, org_id=_own_org(user, org_id, InvitationNotFound))
        return Response(InvitationDeclinedSerializer({"declined": True, "org_id": org_id}).data)


class MeLeaveOrganizationView(APIView):
    @ME_ORGANIZATION_LEAVE_SCHEMA
    def post(self, request: Request, org_id: str) -> Response:
        user = caller(request)
        removal = leave_organization(user=user, org_id=_own_org(user, org_id, OrganizationNotFound))
        body = {"left": True, "org_id": removal.org_id, "returned_to_pool": removal.returned_to_pool}
        return Response(LeftOrganizationSerializer(body).data)
