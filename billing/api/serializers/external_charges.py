"""A call billed by an external gateway (``POST /api/v1/org-billing/charges``): serializers, then
the endpoint's OpenAPI schema."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from billing.ledger.charges import MAX_TOKENS
from billing.models import ServiceType
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


# --- OpenAPI -------------------------------------------------------------------------------

CHARGE_CREATE_SCHEMA = extend_schema(
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
