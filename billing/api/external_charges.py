"""``POST /api/v1/org-billing/charges``: an external gateway bills a call through orgbilling."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import valid_input
from billing.ledger.charges import MAX_TOKENS
from billing.models import ServiceType
from billing.services.external_charges import charge_external_usage
from organizations.api.common import caller
from organizations.auth.api_key_auth import ApiKeyScopePermission, request_api_key
from organizations.models import ApiKey
from orgbilling.api.fields import CreditAmountField, CreditsReadField, StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example


class StrictTokensField(serializers.IntegerField):
    """A JSON whole number of tokens (strings, booleans and fractions are refused)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_value=MAX_TOKENS, required=False, default=0, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class ChargeInput(StrictSerializer):
    user_id = StrictCharField(max_length=150, help_text="Who made the call (their user id / OIDC sub)")
    org_id = StrictCharField(
        max_length=64,
        required=False,
        allow_null=True,
        default=None,
        help_text="Paying org (default: the user's default)",
    )
    request_id = StrictCharField(max_length=128, help_text="The call's id: a retry with it charges nothing")
    model = StrictCharField(max_length=200, required=False, default="", allow_blank=True)
    input_tokens = StrictTokensField()
    output_tokens = StrictTokensField()
    credits = CreditAmountField(
        allow_zero=True,
        required=False,
        help_text="The cost in credits; if absent, tokens times the model's price",
    )
    service_type = serializers.ChoiceField(choices=ServiceType.choices, default=ServiceType.LLM)
    metadata = serializers.DictField(required=False, default=dict)


class ChargeResultSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    user_id = serializers.CharField()
    org_id = serializers.CharField(allow_null=True)
    credits_charged = CreditsReadField()
    remaining_credits = CreditsReadField(help_text="Free credits left to the payer after this charge")
    attribution_id = serializers.IntegerField()
    replayed = serializers.BooleanField(help_text="True when this request_id was charged before")


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

    @extend_schema(
        operation_id="org_billing_charge_create",
        summary="Charge a call made through another gateway (service API key with `charge` scope)",
        description=(
            "Charges `credits`, or `input_tokens`/`output_tokens` times the model's current price, to "
            "the user's allocation in `org_id` (default: their default org, else their individual "
            "credits). The key's owner must administer that org (system admins: any payer). "
            "Idempotent on `request_id`: a retry answers the first charge with `replayed: true`."
        ),
        tags=["charges"],
        request=ChargeInput,
        responses={
            201: ChargeResultSerializer,
            200: ChargeResultSerializer,
            **error_responses(400, 401, 402, 403, 404, 409),
        },
        examples=[
            example(
                "tokens",
                {
                    "user_id": "dev-1",
                    "org_id": "acme",
                    "model": "gpt-4o-mini",
                    "input_tokens": 1200,
                    "output_tokens": 300,
                    "request_id": "litellm-7f3a",
                },
                request=True,
            ),
            example(
                "charged",
                {
                    "request_id": "litellm-7f3a",
                    "user_id": "dev-1",
                    "org_id": "acme",
                    "credits_charged": 0.036,
                    "remaining_credits": 99.964,
                    "attribution_id": 812,
                    "replayed": False,
                },
                status=201,
            ),
        ],
    )
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
