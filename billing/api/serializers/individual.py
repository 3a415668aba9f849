"""A user's individual credits (balance, purchases, ledger) and the staff grant: serializers,
then the endpoints' OpenAPI schemas."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from billing.api.serializers.fields import Credits, CreditsIn, UsdIn
from billing.models import IndividualCreditEntry, IndividualCreditPurchase
from orgbilling.api.fields import StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example

# --- input ---------------------------------------------------------------------------------


class IndividualPurchaseInput(StrictSerializer):
    credits = CreditsIn(required=False, help_text="Credits to buy (1 credit = $0.01).")
    amount_usd = UsdIn(required=False, help_text="Or: buy credits for this many US dollars.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("credits" in attrs) == ("amount_usd" in attrs):
            raise serializers.ValidationError({"credits": "Give either credits or amount_usd."})
        return attrs


class IndividualGrantInput(StrictSerializer):
    credits = CreditsIn(help_text="Credits to grant to the user's own balance.")
    reason = StrictCharField(max_length=500, help_text="Why (kept in the ledger and the audit log).")


# --- output --------------------------------------------------------------------------------


class IndividualPurchaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=IndividualCreditPurchase.Status.choices)
    credits = Credits()
    amount_usd = serializers.DecimalField(
        source="amount", max_digits=12, decimal_places=2, coerce_to_string=False
    )
    currency = serializers.CharField()
    checkout_url = serializers.CharField(
        help_text="Stripe Checkout page to pay at (empty if it never opened)."
    )
    checkout_expires_at = serializers.DateTimeField(allow_null=True)
    fulfilled_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class IndividualCheckoutSerializer(serializers.Serializer):
    purchase = IndividualPurchaseSerializer()
    checkout_url = serializers.URLField(help_text="Stripe Checkout page; credits are added once it is paid.")


class IndividualEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=IndividualCreditEntry.Kind.choices)
    credits = Credits(help_text="Negative when credits left the balance.")
    total_after = Credits()
    org_id = serializers.CharField(allow_null=True, help_text="Where migrated credits went.")
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class IndividualTotalsSerializer(serializers.Serializer):
    total_credits = Credits()
    used_credits = Credits()
    reserved_credits = Credits(help_text="Held for calls in flight.")
    available_credits = Credits()


class IndividualCreditsSerializer(IndividualTotalsSerializer):
    purchases = IndividualPurchaseSerializer(many=True, help_text="The latest 20, newest first.")
    entries = IndividualEntrySerializer(many=True, help_text="The latest 20 ledger entries, newest first.")


class IndividualGrantedSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    credits_granted = Credits()
    entry = IndividualEntrySerializer()
    balance = IndividualTotalsSerializer()


# --- OpenAPI -------------------------------------------------------------------------------

TAGS = ["individual credits"]
_PURCHASE = {
    "id": 3,
    "status": "pending",
    "credits": 500.0,
    "amount_usd": 5.0,
    "currency": "USD",
    "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1B2c3",
    "checkout_expires_at": "2026-01-02T10:00:00Z",
    "fulfilled_at": None,
    "created_at": "2026-01-01T10:00:00Z",
}
_ENTRY = {
    "id": 9,
    "kind": "purchase",
    "credits": 500.0,
    "total_after": 520.0,
    "org_id": None,
    "reason": "500 credits bought by card",
    "created_at": "2026-01-01T10:05:00Z",
}
_BALANCE = {"total_credits": 520.0, "used_credits": 12.5, "reserved_credits": 0.0, "available_credits": 507.5}

MY_CREDITS_SCHEMA = extend_schema(
    operation_id="me_credits_retrieve",
    summary="My individual credits: balance, latest purchases and ledger entries",
    tags=TAGS,
    responses={200: IndividualCreditsSerializer, **error_responses(401, 429)},
    examples=[example("balance", {**_BALANCE, "purchases": [_PURCHASE], "entries": [_ENTRY]})],
)

MY_CREDITS_PURCHASE_SCHEMA = extend_schema(
    operation_id="me_credits_purchase",
    summary="Buy individual credits by card (Stripe Checkout)",
    description=(
        "Any signed-in user buys `credits` (or credits worth `amount_usd`) for their own balance, "
        "the one that pays when they call without an organization. The answer (201) is a "
        "`pending` purchase with the Stripe Checkout URL; the credits are added when Stripe "
        "reports the payment (webhook), exactly once. Same bounds as an organization's purchase "
        "(400 `invalid_amount` outside them). 503 `payments_not_configured` while Stripe is not "
        "configured, 503 `billing_backend_unavailable` when Stripe is down. Accepts an "
        "`Idempotency-Key` header (a retry gets the same checkout)."
    ),
    tags=TAGS,
    request=IndividualPurchaseInput,
    responses={201: IndividualCheckoutSerializer, **error_responses(400, 401, 429, 503)},
    examples=[
        example("buy", {"credits": 500.0}, request=True),
        example(
            "checkout opened", {"purchase": _PURCHASE, "checkout_url": _PURCHASE["checkout_url"]}, status=201
        ),
    ],
)

ADMIN_INDIVIDUAL_GRANT_SCHEMA = extend_schema(
    operation_id="admin_individual_credits_grant",
    summary="Grant individual credits to a user (system admins)",
    description=(
        "Adds `credits` to the user's own balance, with a ledger entry and an audit event "
        "carrying `reason`. Others get 403. Accepts an `Idempotency-Key` header."
    ),
    tags=TAGS,
    parameters=[
        OpenApiParameter("user_id", str, OpenApiParameter.PATH, description="The user's id (OIDC `sub`).")
    ],
    request=IndividualGrantInput,
    responses={200: IndividualGrantedSerializer, **error_responses(400, 401, 403, 404, 429)},
    examples=[
        example("grant", {"credits": 20.0, "reason": "beta tester"}, request=True),
        example(
            "granted",
            {
                "user_id": "ada",
                "credits_granted": 20.0,
                "entry": {**_ENTRY, "kind": "grant", "credits": 20.0, "reason": "beta tester"},
                "balance": _BALANCE,
            },
        ),
    ],
)
