"""GET/PUT /credits/{org_id}/byok: whether the org's members may bring their own provider key
through the gateway (charged 0). Org admins and system admins; the deployment must allow BYOK
too (``LLM_BYOK_ENABLED``)."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.auto_topup import StrictBooleanField
from billing.api.common import ORG_ID_PARAM, valid_input
from organizations.api.common import caller
from organizations.models import Organization
from organizations.permissions import org_admin_access
from organizations.services import set_byok
from orgbilling.api.fields import StrictSerializer
from orgbilling.api.schema import error_responses, example

TAGS = ["credits"]


class ByokInput(StrictSerializer):
    enabled = StrictBooleanField(help_text="Members may send X-Provider-Key (their own key), charged 0.")


class ByokSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    enabled = serializers.BooleanField(help_text="The organization's choice.")
    allowed_by_deployment = serializers.BooleanField(
        help_text="LLM_BYOK_ENABLED: off means no BYOK anywhere."
    )
    effective = serializers.BooleanField(help_text="Both: BYOK calls are accepted for this organization.")


def _render(org: Organization) -> dict[str, Any]:
    allowed = bool(settings.LLM_BYOK_ENABLED)
    body = {
        "org_id": org.id,
        "enabled": org.byok_enabled,
        "allowed_by_deployment": allowed,
        "effective": allowed and org.byok_enabled,
    }
    return dict(ByokSerializer(body).data)


_EXAMPLE = {"org_id": "org_abc123", "enabled": True, "allowed_by_deployment": True, "effective": True}


class ByokView(APIView):
    @extend_schema(
        operation_id="org_billing_byok_retrieve",
        summary="Whether members may bring their own provider key (org admins, system admins)",
        tags=TAGS,
        parameters=[ORG_ID_PARAM],
        responses={200: ByokSerializer, **error_responses(401, 403, 404, 429)},
        examples=[example("enabled", _EXAMPLE)],
    )
    def get(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        return Response(_render(access.org))

    @extend_schema(
        operation_id="org_billing_byok_update",
        summary="Let members bring their own provider key, or stop them (org admins)",
        description=(
            "A gateway call with `X-Provider-Key` is forwarded with the caller's key and charged 0. "
            "It is accepted only when the deployment allows it (`LLM_BYOK_ENABLED`) and the "
            "organization paying has it enabled; otherwise 403 `byok_disabled`. Audited."
        ),
        tags=TAGS,
        parameters=[ORG_ID_PARAM],
        request=ByokInput,
        responses={200: ByokSerializer, **error_responses(400, 401, 403, 404, 429)},
        examples=[example("enable", {"enabled": True}, request=True), example("saved", _EXAMPLE)],
    )
    def put(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(ByokInput, request)
        org = set_byok(org_id=access.org.id, enabled=data["enabled"], actor=caller(request))
        return Response(_render(org))
