"""Invitations and leaving: the org admin's ``/api/v1/organizations/{org_id}/invitations[/{id}]``
and the invitee's ``/api/v1/me/invitations[/{org_id}/accept|decline]`` and
``/api/v1/me/organizations/{org_id}/leave``."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from organizations.api.serializers.common import ORG_ID_PARAM, ROLE_CHOICES
from organizations.api.serializers.me import MeOrganizationSerializer
from organizations.models import OrganizationMember
from orgbilling.api.fields import CreditsReadField
from orgbilling.api.schema import error_responses, example

# Output ---------------------------------------------------------------------------------------


class InvitationSerializer(serializers.Serializer):
    """An invitation as its inviter sees it: what they typed, never the account it matched."""

    invitation_id = serializers.UUIDField(help_text="Revoke it by this id")
    org_id = serializers.CharField()
    email = serializers.CharField(allow_null=True, help_text="The address invited (null: by user_id)")
    user_id = serializers.CharField(allow_null=True, help_text="The user invited by id (null: by email)")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    status = serializers.ChoiceField(choices=[OrganizationMember.Status.INVITED.value])
    invited_by = serializers.CharField(allow_null=True, help_text="The inviter's user id")
    invited_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="Not acceptable after this; re-invite to refresh")


class MyInvitationSerializer(serializers.Serializer):
    """An invitation as its invitee sees it."""

    org_id = serializers.CharField()
    org_name = serializers.CharField(source="org.org_name")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    invited_by = serializers.SerializerMethodField(help_text="The inviter's user id")
    invited_by_name = serializers.SerializerMethodField(help_text="The inviter's name")
    invited_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()

    def get_invited_by(self, member: OrganizationMember) -> str | None:
        return member.invited_by.username if member.invited_by is not None else None

    def get_invited_by_name(self, member: OrganizationMember) -> str | None:
        inviter = member.invited_by
        return (inviter.get_full_name() or inviter.username) if inviter is not None else None


class InvitationDeclinedSerializer(serializers.Serializer):
    declined = serializers.BooleanField()
    org_id = serializers.CharField()


class InvitationRevokedSerializer(serializers.Serializer):
    revoked = serializers.BooleanField()
    invitation_id = serializers.UUIDField()


class LeftOrganizationSerializer(serializers.Serializer):
    left = serializers.BooleanField()
    org_id = serializers.CharField()
    returned_to_pool = CreditsReadField(
        help_text="Unused credits of your allocation, back in the organization's pool"
    )


# Schemas --------------------------------------------------------------------------------------

INVITATION_ID_PARAM = OpenApiParameter(
    "invitation_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The invitation's id"
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

_MY_INVITATION = {
    "org_id": "org_abc123",
    "org_name": "Acme Corporation",
    "role": "member",
    "invited_by": "user_123",
    "invited_by_name": "Ada Lovelace",
    "invited_at": "2026-01-05T09:30:00Z",
    "expires_at": "2026-01-19T09:30:00Z",
}

ORGANIZATION_INVITATIONS_LIST_SCHEMA = extend_schema(
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
        example("invitations", {"count": 1, "next": None, "previous": None, "results": [INVITATION_EXAMPLE]})
    ],
)

ORGANIZATION_INVITATION_REVOKE_SCHEMA = extend_schema(
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

ME_INVITATIONS_LIST_SCHEMA = extend_schema(
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

ME_INVITATION_ACCEPT_SCHEMA = extend_schema(
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

ME_INVITATION_DECLINE_SCHEMA = extend_schema(
    operation_id="me_invitation_decline",
    tags=["me"],
    summary="Decline an invitation",
    description="Deletes it (expired or not). No pending invitation → 404 `invitation_not_found`.",
    parameters=[ORG_ID_PARAM],
    request=None,
    responses={200: InvitationDeclinedSerializer, **error_responses(401, 404, 429)},
    examples=[example("declined", {"declined": True, "org_id": "org_abc123"})],
)

ME_ORGANIZATION_LEAVE_SCHEMA = extend_schema(
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
