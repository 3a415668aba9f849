"""GET/PUT /credits/{org_id}/byok: whether the org's members may bring their own provider key
through the gateway (charged 0). Org admins and system admins; the deployment must allow BYOK
too (``LLM_BYOK_ENABLED``)."""

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import valid_input
from billing.api.serializers.byok import BYOK_RETRIEVE_SCHEMA, BYOK_UPDATE_SCHEMA, ByokInput, ByokSerializer
from organizations.api.common import caller
from organizations.models import Organization
from organizations.permissions import org_admin_access
from organizations.services import set_byok


def _render(org: Organization) -> dict[str, Any]:
    allowed = bool(settings.LLM_BYOK_ENABLED)
    body = {
        "org_id": org.id,
        "enabled": org.byok_enabled,
        "allowed_by_deployment": allowed,
        "effective": allowed and org.byok_enabled,
    }
    return dict(ByokSerializer(body).data)


class ByokView(APIView):
    @BYOK_RETRIEVE_SCHEMA
    def get(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        return Response(_render(access.org))

    @BYOK_UPDATE_SCHEMA
    def put(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(ByokInput, request)
        org = set_byok(org_id=access.org.id, enabled=data["enabled"], actor=caller(request))
        return Response(_render(org))
