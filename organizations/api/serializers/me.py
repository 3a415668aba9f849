"""The signed-in user's profile: ``GET /api/v1/me`` and ``PUT /api/v1/me/default-org``."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from organizations.api.serializers.common import ROLE_CHOICES, STATUS_CHOICES
from orgbilling.api.fields import StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example

TAGS = ["me"]
CONTEXT_SOURCES = ["default", "oldest", "individual"]


# Input ----------------------------------------------------------------------------------------


class DefaultOrgInput(StrictSerializer):
    org_id = StrictCharField(max_length=64)


# Output ---------------------------------------------------------------------------------------


class MeUserSerializer(serializers.Serializer):
    user_id = serializers.CharField(source="username")
    email = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    is_system_admin = serializers.BooleanField(source="is_staff")


class MeOrganizationSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    org_name = serializers.CharField(source="org.org_name")
    org_is_active = serializers.BooleanField(source="org.is_active")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    status = serializers.ChoiceField(choices=STATUS_CHOICES)
    is_default = serializers.BooleanField()
    joined_at = serializers.DateTimeField()


class MeBillingContextSerializer(serializers.Serializer):
    org_id = serializers.CharField(
        allow_null=True, help_text="The org that pays (null: the user's individual credits)"
    )
    # A declared field shadows ``Field.source`` only on the class body; DRF pops it at runtime.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=CONTEXT_SOURCES,
        help_text="Why this account pays: the default org, the oldest membership, or individual credits",
    )
    can_bill = serializers.BooleanField(
        help_text="false: requests naming no org are refused (see refusal_code) until this is fixed"
    )
    refusal_code = serializers.CharField(
        allow_null=True, help_text="The error billing answers, e.g. `organization_inactive`, `not_a_member`"
    )


class MeSerializer(serializers.Serializer):
    user = MeUserSerializer()
    organizations = MeOrganizationSerializer(many=True)
    default_org_id = serializers.CharField(
        allow_null=True,
        help_text="The org that pays for requests that name none (null: individual credits); "
        "equals billing_context.org_id",
    )
    billing_context = MeBillingContextSerializer()


# Schemas --------------------------------------------------------------------------------------

ME_EXAMPLE = {
    "user": {
        "user_id": "user_123",
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "is_system_admin": False,
    },
    "organizations": [
        {
            "org_id": "org_abc123",
            "org_name": "Acme Corporation",
            "org_is_active": True,
            "role": "admin",
            "status": "active",
            "is_default": True,
            "joined_at": "2026-01-01T00:00:00Z",
        },
        {
            "org_id": "org_side",
            "org_name": "Side Project",
            "org_is_active": True,
            "role": "member",
            "status": "suspended",
            "is_default": False,
            "joined_at": "2026-02-01T00:00:00Z",
        },
    ],
    "default_org_id": "org_abc123",
    "billing_context": {"org_id": "org_abc123", "source": "default", "can_bill": True, "refusal_code": None},
}

ME_RETRIEVE_SCHEMA = extend_schema(
    operation_id="me_retrieve",
    tags=TAGS,
    summary="The signed-in user: profile, organizations with roles, default org",
    description=(
        "Every membership the user holds, active or suspended (pending invitations are at "
        "`/api/v1/me/invitations` and change nothing here until accepted). `default_org_id` is the "
        "organization that pays for requests naming none (the default membership, else the "
        "oldest active one); null means the user's individual credits. When billing would "
        "refuse such requests (the default membership is suspended or its org deactivated), "
        "`billing_context.can_bill` is false and `refusal_code` says why."
    ),
    responses={200: MeSerializer, **error_responses(401, 429)},
    examples=[example("profile", ME_EXAMPLE)],
)

ME_DEFAULT_ORG_UPDATE_SCHEMA = extend_schema(
    operation_id="me_default_org_update",
    tags=TAGS,
    summary="Choose the organization that pays for your requests by default",
    description=(
        "The organization must be one where you are an active member (else 404 "
        "`organization_not_found`) and not deactivated (403 `organization_inactive`). "
        "Answers the updated profile."
    ),
    request=DefaultOrgInput,
    responses={200: MeSerializer, **error_responses(400, 401, 403, 404, 429)},
    examples=[
        example("choose org", {"org_id": "org_abc123"}, request=True),
        example("updated profile", ME_EXAMPLE),
    ],
)
