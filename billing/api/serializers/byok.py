"""Whether an organization's members may bring their own provider key: serializers, then the
endpoints' OpenAPI schemas."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from billing.api.serializers.fields import ORG_ID_PARAM, StrictBooleanField
from orgbilling.api.fields import StrictSerializer
from orgbilling.api.schema import error_responses, example


class ByokInput(StrictSerializer):
    enabled = StrictBooleanField(help_text="Members may send X-Provider-Key (their own key), charged 0.")


class ByokSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    enabled = serializers.BooleanField(help_text="The organization's choice.")
    allowed_by_deployment = serializers.BooleanField(
        help_text="LLM_BYOK_ENABLED: off means no BYOK anywhere."
    )
    effective = serializers.BooleanField(help_text="Both: BYOK calls are accepted for this organization.")


# --- OpenAPI -------------------------------------------------------------------------------

TAGS = ["credits"]

_EXAMPLE = {"org_id": "org_abc123", "enabled": True, "allowed_by_deployment": True, "effective": True}

BYOK_RETRIEVE_SCHEMA = extend_schema(
    operation_id="org_billing_byok_retrieve",
    summary="Whether members may bring their own provider key (org admins, system admins)",
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    responses={200: ByokSerializer, **error_responses(401, 403, 404, 429)},
    examples=[example("enabled", _EXAMPLE)],
)

BYOK_UPDATE_SCHEMA = extend_schema(
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
