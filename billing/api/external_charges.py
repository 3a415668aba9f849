"""``POST /api/v1/org-billing/charges``: an external gateway bills a call through orgbilling."""

from typing import Any

from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import valid_input
from billing.api.serializers.external_charges import CHARGE_CREATE_SCHEMA, ChargeInput, ChargeResultSerializer
from billing.services.external_charges import charge_external_usage
from organizations.api.common import caller
from organizations.auth.api_key_auth import ApiKeyScopePermission, request_api_key
from organizations.models import ApiKey


class ServiceKeyWithChargeScope(BasePermission):
    message = "Charges are reported with a service API key holding the `charge` scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request_api_key(request)
        return key is not None and ApiKey.Scope.CHARGE in key.scopes


class ChargeView(APIView):
    """A busy gateway reports every call: the per-user write rate limit does not apply; the
    payer's credits and the admitting gateway's own limits do."""

    permission_classes = [IsAuthenticated, ServiceKeyWithChargeScope, ApiKeyScopePermission]
    throttle_classes: list[Any] = []
    required_api_key_scope = ApiKey.Scope.CHARGE

    @CHARGE_CREATE_SCHEMA
    def post(self, request: Request) -> Response:
        data = valid_input(ChargeInput, request)
        charge = charge_external_usage(actor=caller(request), **data)
        body = ChargeResultSerializer(
            {
                "request_id": charge.request_id,
                "user_id": charge.user.username,
                "org_id": charge.org_id,
                "credits_charged": charge.result.credits_charged,
                "remaining_credits": charge.result.remaining_credits,
                "attribution_id": charge.result.attribution_id,
                "replayed": charge.result.replayed,
            }
        ).data
        return Response(body, status=200 if charge.result.replayed else 201)
