"""``GET /api/v1/me`` (profile, memberships, default org) and ``PUT /api/v1/me/default-org``."""

from typing import cast

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from organizations.api.lookups import me_overview
from organizations.api.serializers.me import (
    ME_DEFAULT_ORG_UPDATE_SCHEMA,
    ME_RETRIEVE_SCHEMA,
    DefaultOrgInput,
    MeSerializer,
)
from organizations.models import User
from organizations.services import set_default_organization


def _me(user: User) -> Response:
    return Response(MeSerializer(me_overview(user=user)).data)


class MeView(APIView):
    @ME_RETRIEVE_SCHEMA
    def get(self, request: Request) -> Response:
        return _me(cast(User, request.user))


class MeDefaultOrgView(APIView):
    @ME_DEFAULT_ORG_UPDATE_SCHEMA
    def put(self, request: Request) -> Response:
        user = cast(User, request.user)
        data = DefaultOrgInput(data=request.data)
        data.is_valid(raise_exception=True)
        set_default_organization(user=user, org_id=data.validated_data["org_id"])
        return _me(user)
