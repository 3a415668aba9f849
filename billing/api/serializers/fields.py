"""Fields and path parameters shared by the billing API's serializers and schemas.

Input fields are strict (wrong JSON types are 400s) and turn credit amounts into integer
millicredits; output fields render millicredits as credits and USD as JSON numbers.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers

from billing.money import MAX_CREDITS
from orgbilling.api.fields import CreditAmountField, CreditsReadField, StrictCharField, UsdAmountField

_CREDITS_IN_SCHEMA = {
    "type": "number",
    "maximum": MAX_CREDITS,
    "description": "Credits as a JSON number with at most 3 decimals (1 credit = $0.01).",
}


@extend_schema_field({**_CREDITS_IN_SCHEMA, "minimum": 0, "exclusiveMinimum": True})
class CreditsIn(CreditAmountField):
    """A positive credit amount in a request body."""


@extend_schema_field({**_CREDITS_IN_SCHEMA, "minimum": 0})
class CreditsOrZeroIn(CreditAmountField):
    """A credit amount that may be zero."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_zero=True, **kwargs)


# The shared fields carry their own OpenAPI types; these names are what the serializers use.
UsdIn = UsdAmountField
Credits = CreditsReadField


@extend_schema_field({"type": "boolean"})
class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true``/``false`` only (DRF would also take ``"yes"`` or ``1``)."""

    default_error_messages = {"invalid": "Expected true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON whole number only (strings, booleans and fractions are refused)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


def user_id_field(**kwargs: Any) -> StrictCharField:
    kwargs.setdefault("help_text", "A user's id (their OIDC `sub`).")
    return StrictCharField(max_length=150, **kwargs)


def usd_field(**kwargs: Any) -> serializers.DecimalField:
    kwargs.setdefault("help_text", "US dollars")
    return serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=False, **kwargs)


def percent_field(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=5, decimal_places=1, coerce_to_string=False, **kwargs)


# --- OpenAPI path parameters -----------------------------------------------------------------

ORG_ID_PARAM = OpenApiParameter(
    "org_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Organization id (`org_abc123`)"
)
USER_ID_PARAM = OpenApiParameter(
    "user_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The member's user id (OIDC `sub`)"
)
