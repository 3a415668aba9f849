"""An organization's auto top-up settings: serializers, then the endpoints' OpenAPI schemas."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from billing.api.serializers.fields import ORG_ID_PARAM, Credits, CreditsIn, StrictBooleanField, UsdIn
from orgbilling.api.fields import StrictSerializer
from orgbilling.api.schema import error_responses, example


class AutoTopUpInput(StrictSerializer):
    """The whole setting (PUT replaces it): every field is required."""

    enabled = StrictBooleanField(help_text="Needs a saved card (see `save_card_at_checkout`).")
    threshold_credits = CreditsIn(help_text="Top up when the pool's available credits fall below this.")
    amount_credits = CreditsIn(
        help_text="Credits bought per top-up (whole cents, within the purchase limits)."
    )
    monthly_cap_usd = UsdIn(help_text="Most USD charged by auto top-ups per calendar month (UTC).")
    save_card_at_checkout = StrictBooleanField(
        help_text="Card purchases through Checkout save the card for auto top-up."
    )


class AutoTopUpSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    configured = serializers.BooleanField(help_text="False until the settings are saved once.")
    enabled = serializers.BooleanField()
    threshold_credits = Credits(allow_null=True)
    amount_credits = Credits(allow_null=True)
    monthly_cap_usd = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    save_card_at_checkout = serializers.BooleanField()
    has_saved_card = serializers.BooleanField()
    consecutive_failures = serializers.IntegerField()
    disabled_reason = serializers.CharField(help_text="Why auto top-up was turned off, if it was.")
    spent_this_month_usd = serializers.DecimalField(max_digits=12, decimal_places=2)
    updated_at = serializers.DateTimeField(allow_null=True)


# --- OpenAPI -------------------------------------------------------------------------------

TAGS = ["credits"]

_SETTINGS_EXAMPLE = {
    "org_id": "org_abc123",
    "configured": True,
    "enabled": True,
    "threshold_credits": 1000.0,
    "amount_credits": 5000.0,
    "monthly_cap_usd": 200.0,
    "save_card_at_checkout": True,
    "has_saved_card": True,
    "consecutive_failures": 0,
    "disabled_reason": "",
    "spent_this_month_usd": 50.0,
    "updated_at": "2026-01-02T10:00:00Z",
}
_INPUT_EXAMPLE = {
    "enabled": True,
    "threshold_credits": 1000.0,
    "amount_credits": 5000.0,
    "monthly_cap_usd": 200.0,
    "save_card_at_checkout": True,
}

AUTO_TOPUP_RETRIEVE_SCHEMA = extend_schema(
    operation_id="org_billing_auto_topup_retrieve",
    summary="Auto top-up settings (org admins and system admins)",
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    responses={200: AutoTopUpSerializer, **error_responses(401, 403, 404, 429)},
    examples=[
        example("enabled", _SETTINGS_EXAMPLE),
        example(
            "turned off after failures",
            {
                **_SETTINGS_EXAMPLE,
                "enabled": False,
                "consecutive_failures": 3,
                "disabled_reason": "3 payments failed in a row; last: Your card has insufficient funds.",
            },
        ),
    ],
)

AUTO_TOPUP_UPDATE_SCHEMA = extend_schema(
    operation_id="org_billing_auto_topup_update",
    summary="Set auto top-up (org admins): threshold, amount, monthly cap",
    description=(
        "When the pool's available credits fall below `threshold_credits`, `amount_credits` are "
        "bought with the saved card (checked every 5 minutes; one top-up at a time; never more "
        "than `monthly_cap_usd` a calendar month). A card is saved by one card purchase "
        "(`POST /credits/{org_id}/add`) made while `save_card_at_checkout` is true. Enabling "
        "without a saved card is 409 `auto_topup_payment_method_required`. After 3 declined "
        "payments in a row auto top-up turns itself off and the org admins are e-mailed; enabling "
        "it again resets the count."
    ),
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    request=AutoTopUpInput,
    responses={200: AutoTopUpSerializer, **error_responses(400, 401, 403, 404, 409, 429, 503)},
    examples=[
        example("enable", _INPUT_EXAMPLE, request=True),
        example("opt in to saving the card", {**_INPUT_EXAMPLE, "enabled": False}, request=True),
        example("saved", _SETTINGS_EXAMPLE),
    ],
)
