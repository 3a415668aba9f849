"""Membership management: ``/api/v1/organizations/{org_id}/members[/{user_id}]``."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers

from organizations.api.serializers.common import ORG_ID_PARAM, ROLE_CHOICES, STATUS_CHOICES
from organizations.api.serializers.invitations import INVITATION_EXAMPLE, InvitationSerializer
from organizations.models import OrganizationMember
from organizations.services import SETTABLE_STATUSES
from orgbilling.api.fields import CreditsReadField, StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example

TAGS = ["members"]
SETTABLE_STATUS_CHOICES = [(status.value, status.label) for status in SETTABLE_STATUSES]
ADD_STATUS_CHOICES = [
    (status.value, status.label)
    for status in (OrganizationMember.Status.INVITED, OrganizationMember.Status.ACTIVE)
]


# Input ----------------------------------------------------------------------------------------


class OrgMemberAddInput(StrictSerializer):
    """Exactly one of ``user_id`` and ``email`` names the invitee."""

    user_id = StrictCharField(max_length=150, required=False, help_text="The user's id (their OIDC `sub`)")
    email = serializers.EmailField(
        max_length=254, required=False, help_text="An e-mail address, with or without an account yet"
    )
    role = serializers.ChoiceField(
        choices=ROLE_CHOICES, default=OrganizationMember.Role.MEMBER, help_text="`member` unless given"
    )
    status = serializers.ChoiceField(
        choices=ADD_STATUS_CHOICES,
        default=OrganizationMember.Status.INVITED,
        help_text="`invited` unless given; `active` (a direct add, no consent asked) is for "
        "system admins only",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("user_id" in attrs) == ("email" in attrs):
            raise serializers.ValidationError(
                {"non_field_errors": ["Give exactly one of user_id and email."]}
            )
        return attrs


class OrgMemberUpdateInput(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLE_CHOICES, required=False)
    status = serializers.ChoiceField(choices=SETTABLE_STATUS_CHOICES, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError({"non_field_errors": ["Give a role or a status to change."]})
        return attrs


# Output ---------------------------------------------------------------------------------------


class OrgMemberSerializer(serializers.Serializer):
    user_id = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    first_name = serializers.CharField(source="user.first_name")
    last_name = serializers.CharField(source="user.last_name")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    status = serializers.ChoiceField(choices=STATUS_CHOICES)
    joined_at = serializers.DateTimeField()


class OrgMemberRemovedSerializer(serializers.Serializer):
    removed = serializers.BooleanField()
    org_id = serializers.CharField()
    user_id = serializers.CharField()
    returned_to_pool = CreditsReadField(
        help_text="Unused credits of the revoked allocation, back in the pool"
    )


# Schemas --------------------------------------------------------------------------------------

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

ORGANIZATION_MEMBERS_LIST_SCHEMA = extend_schema(
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

ORGANIZATION_MEMBERS_ADD_SCHEMA = extend_schema(
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

ORGANIZATION_MEMBER_UPDATE_SCHEMA = extend_schema(
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

ORGANIZATION_MEMBER_REMOVE_SCHEMA = extend_schema(
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
