"""``GET /api/v1/me`` (profile, memberships, default org) and ``PUT /api/v1/me/default-org``."""

from typing import cast

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from organizations.api.lookups import me_overview
from organizations.api.serializers import DefaultOrgInput, MeSerializer
from organizations.models import User
from organizations.services import set_default_organization
from orgbilling.api.schema import error_responses, example

TAGS = ["me"]

_ME_EXAMPLE = {
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


def _me(user: User) -> Response:
    return Response(MeSerializer(me_overview(user=user)).data)


class MeView(APIView):
    @extend_schema(
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
        examples=[example("profile", _ME_EXAMPLE)],
    )
    def get(self, request: Request) -> Response:
        return _me(cast(User, request.user))


class MeDefaultOrgView(APIView):
    @extend_schema(
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
            example("updated profile", _ME_EXAMPLE),
        ],
    )
    def put(self, request: Request) -> Response:
        user = cast(User, request.user)
        data = DefaultOrgInput(data=request.data)
        data.is_valid(raise_exception=True)
        set_default_organization(user=user, org_id=data.validated_data["org_id"])
        return _me(user)
