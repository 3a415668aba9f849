"""Invitations and leaving: the org admin's ``/api/v1/organizations/{org_id}/invitations[/{id}]``
and the invitee's ``/api/v1/me/invitations[/{org_id}/accept|decline]`` and
``/api/v1/me/organizations/{org_id}/leave``."""

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from organizations.api.common import caller
from organizations.api.lookups import my_invitations, org_invitations
from organizations.api.members import INVITATION_EXAMPLE, ORG_ID_PARAM
from organizations.api.serializers import (
    InvitationDeclinedSerializer,
    InvitationRevokedSerializer,
    InvitationSerializer,
    LeftOrganizationSerializer,
    MeOrganizationSerializer,
    MyInvitationSerializer,
)
from organizations.errors import InvitationNotFound, OrganizationNotFound
from organizations.invitations import accept_invitation, decline_invitation, revoke_invitation
from organizations.models import OrganizationMember, User
from organizations.permissions import in_api_key_scope, org_admin_access
from organizations.services import leave_organization
from orgbilling.api.schema import error_responses, example

INVITATION_ID_PARAM = OpenApiParameter(
    "invitation_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The invitation's id"
)

_MY_INVITATION = {
    "org_id": "org_abc123",
    "org_name": "Acme Corporation",
    "role": "member",
    "invited_by": "user_123",
    "invited_by_name": "Ada Lovelace",
    "invited_at": "2026-01-05T09:30:00Z",
    "expires_at": "2026-01-19T09:30:00Z",
}


def _own_org(user: User, org_id: str, missing: type[OrganizationNotFound | InvitationNotFound]) -> str:
    """``org_id`` when the caller's credentials reach it; an org-scoped API key reaches no other."""
    if not in_api_key_scope(user, org_id):
        raise missing(details={"org_id": org_id})
    return org_id


class OrgInvitationsView(GenericAPIView):
    serializer_class = InvitationSerializer
    queryset = OrganizationMember.objects.none()  # for the schema: the rows come from org_invitations

    @extend_schema(
        operation_id="organization_invitations_list",
        tags=["members"],
        summary="List the organization's pending invitations",
        description=(
            "Org admins and system admins. Invitations to accounts and to addresses alike, as "
            "they were sent (the address or user id typed); expired ones stay listed until "
            "revoked or re-sent."
        ),
        parameters=[ORG_ID_PARAM],
        responses={200: InvitationSerializer(many=True), **error_responses(400, 401, 403, 404, 429)},
        examples=[
            example(
                "invitations", {"count": 1, "next": None, "previous": None, "results": [INVITATION_EXAMPLE]}
            )
        ],
    )
    def get(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        page = self.paginate_queryset(org_invitations(org_id=access.org.id))  # type: ignore[arg-type]
        return self.get_paginated_response(InvitationSerializer(page, many=True).data)


class OrgInvitationView(APIView):
    @extend_schema(
        operation_id="organization_invitation_revoke",
        tags=["members"],
        summary="Revoke a pending invitation",
        description="Org admins and system admins. Unknown or already answered → 404 `invitation_not_found`.",
        parameters=[ORG_ID_PARAM, INVITATION_ID_PARAM],
        request=None,
        responses={200: InvitationRevokedSerializer, **error_responses(401, 403, 404, 429)},
        examples=[
            example("revoked", {"revoked": True, "invitation_id": INVITATION_EXAMPLE["invitation_id"]}),
        ],
    )
    def delete(self, request: Request, org_id: str, invitation_id: uuid.UUID) -> Response:
        actor = caller(request)
        access = org_admin_access(user=actor, org_id=org_id)
        revoke_invitation(org_id=access.org.id, invitation_id=invitation_id, actor=actor)
        return Response(InvitationRevokedSerializer({"revoked": True, "invitation_id": invitation_id}).data)


class MyInvitationsView(APIView):
    @extend_schema(
        operation_id="me_invitations_list",
        tags=["me"],
        summary="Your pending invitations",
        description=(
            "Invitations you have not answered and that have not expired, newest first. Until "
            "you accept one, its organization does not pay for your requests, sees nothing of "
            "yours and stays 404 to you elsewhere in the API."
        ),
        responses={200: MyInvitationSerializer(many=True), **error_responses(401, 429)},
        examples=[example("invitations", [_MY_INVITATION])],
    )
    def get(self, request: Request) -> Response:
        return Response(MyInvitationSerializer(my_invitations(user=caller(request)), many=True).data)


class MyInvitationAcceptView(APIView):
    @extend_schema(
        operation_id="me_invitation_accept",
        tags=["me"],
        summary="Accept an invitation: become an active member",
        description=(
            "No pending invitation to this organization → 404 `invitation_not_found`; past its "
            "deadline → 410 `invitation_expired` (ask for a new one). Accepting does not make "
            "the organization your default; answers your membership."
        ),
        parameters=[ORG_ID_PARAM],
        request=None,
        responses={200: MeOrganizationSerializer, **error_responses(401, 404, 410, 429)},
        examples=[
            example(
                "member",
                {
                    "org_id": "org_abc123",
                    "org_name": "Acme Corporation",
                    "org_is_active": True,
                    "role": "member",
                    "status": "active",
                    "is_default": False,
                    "joined_at": "2026-01-06T10:00:00Z",
                },
            )
        ],
    )
    def post(self, request: Request, org_id: str) -> Response:
        user = caller(request)
        member = accept_invitation(user=user, org_id=_own_org(user, org_id, InvitationNotFound))
        return Response(MeOrganizationSerializer(member).data)


class MyInvitationDeclineView(APIView):
    @extend_schema(
        operation_id="me_invitation_decline",
        tags=["me"],
        summary="Decline an invitation",
        description="Deletes it (expired or not). No pending invitation → 404 `invitation_not_found`.",
        parameters=[ORG_ID_PARAM],
        request=None,
        responses={200: InvitationDeclinedSerializer, **error_responses(401, 404, 429)},
        examples=[example("declined", {"declined": True, "org_id": "org_abc123"})],
    )
    def post(self, request: Request, org_id: str) -> Response:
        user = caller(request)
        decline_invitation(user=user, org_id=_own_org(user, org_id, InvitationNotFound))
        return Response(InvitationDeclinedSerializer({"declined": True, "org_id": org_id}).data)


class MeLeaveOrganizationView(APIView):
    @extend_schema(
        operation_id="me_organization_leave",
        tags=["me"],
        summary="Leave an organization",
        description=(
            "Ends your membership: your allocation's unused credits return to the organization's "
            "pool. The last active admin cannot leave (409 `last_admin`); credits on hold for "
            "calls in flight → 409 `allocation_has_active_holds` (retry shortly). Not a member → "
            "404 `organization_not_found`."
        ),
        parameters=[ORG_ID_PARAM],
        request=None,
        responses={200: LeftOrganizationSerializer, **error_responses(401, 404, 409, 429)},
        examples=[example("left", {"left": True, "org_id": "org_abc123", "returned_to_pool": 750.5})],
    )
    def post(self, request: Request, org_id: str) -> Response:
        user = caller(request)
        removal = leave_organization(user=user, org_id=_own_org(user, org_id, OrganizationNotFound))
        body = {"left": True, "org_id": removal.org_id, "returned_to_pool": removal.returned_to_pool}
        return Response(LeftOrganizationSerializer(body).data)
