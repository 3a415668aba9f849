"""Serializer fields for money: credits in, credits out, integer millicredits inside."""

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orgbilling.errors import InvalidAmount
from orgbilling.money import MAX_CREDITS, MAX_USD, credits_to_millicredits, millicredits_to_credits, parse_usd


@extend_schema_field(
    {
        "type": "number",
        "minimum": 0,
        "maximum": MAX_CREDITS,
        "description": "Credits (1 credit = $0.01), a JSON number with at most 3 decimals.",
        "example": 1000.0,
    }
)
class CreditAmountField(serializers.Field):
    """A credit amount as a JSON number with at most 3 decimals ↔ integer millicredits."""

    default_error_messages = {"invalid": "A credit amount is a JSON number with at most 3 decimals."}

    def __init__(self, *, allow_zero: bool = False, **kwargs: Any) -> None:
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int | Decimal):
            self.fail("invalid")
        try:
            return credits_to_millicredits(data, allow_zero=self.allow_zero)
        except InvalidAmount as err:
            raise serializers.ValidationError(err.message, code=err.code) from None

    def to_representation(self, value: int) -> Decimal:
        return millicredits_to_credits(value)


@extend_schema_field({"type": "number", "description": "Credits, with up to 3 decimals.", "example": 5000.0})
class CreditsReadField(serializers.ReadOnlyField):
    """Integer millicredits rendered as credits (``5000.0``)."""

    def to_representation(self, value: int) -> Decimal:
        return millicredits_to_credits(value)


@extend_schema_field(
    {"type": "number", "minimum": 0, "maximum": float(MAX_USD), "description": "US dollars, 2 decimals."}
)
class UsdAmountField(serializers.Field):
    default_error_messages = {"invalid": "A money amount is a JSON number with at most 2 decimals."}

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, int | Decimal):
            self.fail("invalid")
        try:
            return parse_usd(data)
        except InvalidAmount as err:
            raise serializers.ValidationError(err.message, code=err.code) from None

    def to_representation(self, value: Decimal) -> Decimal:
        return value


class StrictCharField(serializers.CharField):
    """A JSON string only: numbers and booleans are refused rather than turned into text."""

    default_error_messages = {"invalid": "Expected a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error rather than silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        elif data is not None:
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        return super().to_internal_value(data)
