"""Serializers of the subscription, credit-pool and allocation endpoints.

Input serializers are strict (unknown fields and wrong JSON types are 400s) and turn credit
amounts into integer millicredits; output serializers render millicredits as credits.
"""

from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import CreditPurchase, OrganizationSubscription, UserCreditAllocation
from billing.money import MAX_CREDITS
from organizations.models import ORG_ID_VALIDATOR
from orgbilling.api.fields import (
    CreditAmountField,
    CreditsReadField,
    StrictCharField,
    StrictSerializer,
    UsdAmountField,
)

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


def _user_id_field(**kwargs: Any) -> StrictCharField:
    kwargs.setdefault("help_text", "A user's id (their OIDC `sub`).")
    return StrictCharField(max_length=150, **kwargs)


# --- input ---------------------------------------------------------------------------------


class SubscriptionCreateInput(StrictSerializer):
    org_id = StrictCharField(max_length=64, validators=[ORG_ID_VALIDATOR])
    plan_code = StrictCharField(max_length=64, help_text="`starter`, `professional` or `enterprise`")
    org_name = StrictCharField(max_length=200, required=False, help_text="For a new organization.")
    billing_email = serializers.EmailField(required=False, allow_blank=True)
    initial_credits = CreditsIn(required=False, help_text="System admins only: credits granted to the pool.")
    user_id = _user_id_field(
        required=False,
        help_text="Who becomes the org admin. System admins may name anyone; others only themselves.",
    )


class PlanChangeInput(StrictSerializer):
    plan_code = StrictCharField(max_length=64)


class EmptyInput(StrictSerializer):
    """No fields: any field sent is refused."""


class CreditsAddInput(StrictSerializer):
    """System admins: ``credits`` (+ ``purchase_amount``/``description`` to record a purchase).
    Org admins: ``credits`` or ``amount_usd`` to buy by card (Stripe Checkout)."""

    credits = CreditsIn(required=False, help_text="Credits to grant (system admins) or to buy (org admins).")
    amount_usd = UsdIn(
        required=False,
        help_text="Org admins: buy credits for this many US dollars instead (1 credit = $0.01).",
    )
    purchase_amount = UsdIn(
        required=False, help_text="System admins: money paid, when this records an off-line purchase."
    )
    description = StrictCharField(max_length=500, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("credits" in attrs) == ("amount_usd" in attrs):
            raise serializers.ValidationError({"credits": "Give either credits or amount_usd."})
        return attrs


class AllocateInput(StrictSerializer):
    user_id = _user_id_field()
    credits = CreditsIn(help_text="Credits added to the member's allocation.")
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Must be in the future; omit for no expiry."
    )

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.")
        return value


class AllocationAdjustInput(StrictSerializer):
    """The member's new allocated total."""

    # This PATCH is never partial: ``credits`` is required. ``partial`` is pinned to False so
    # neither DRF nor the OpenAPI schema (which marks PATCH bodies partial) makes it optional.
    credits = CreditsOrZeroIn(help_text="The member's new allocated total (not a delta).")

    @property
    def partial(self) -> bool:
        return False

    @partial.setter
    def partial(self, value: bool) -> None:
        pass


class TransferInput(StrictSerializer):
    from_user_id = _user_id_field()
    to_user_id = _user_id_field()
    credits = CreditsIn()


# --- output --------------------------------------------------------------------------------


class PlanSerializer(serializers.Serializer):
    plan_code = serializers.CharField()
    name = serializers.CharField()
    monthly_price = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.CharField()
    rate_limit_tier = serializers.CharField()
    monthly_api_calls = serializers.IntegerField(help_text="API calls per month; 0 = unlimited")


class SubscriptionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    org_id = serializers.CharField()
    plan_code = serializers.CharField(source="plan.plan_code")
    plan_name = serializers.CharField(source="plan.name")
    status = serializers.ChoiceField(choices=OrganizationSubscription.Status.choices)
    monthly_price = serializers.DecimalField(max_digits=10, decimal_places=2, source="plan.monthly_price")
    currency = serializers.CharField(source="plan.currency")
    current_period_start = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    canceled_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class OrganizationSummarySerializer(serializers.Serializer):
    id = serializers.CharField()
    org_name = serializers.CharField()
    slug = serializers.CharField()
    billing_email = serializers.CharField(allow_blank=True)


class CreditPoolSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    total_credits = Credits()
    allocated_credits = Credits()
    used_credits = Credits()
    available_credits = Credits(help_text="total - allocated: what can still be allocated")


class AllocationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    org_id = serializers.CharField()
    user_id = serializers.CharField(source="user.username")
    user_email = serializers.CharField(source="user.email", allow_blank=True)
    allocated_credits = Credits()
    used_credits = Credits()
    reserved_credits = Credits(help_text="held by calls in flight")
    remaining_credits = Credits(source="free_credits", help_text="allocated - used - reserved")
    is_active = serializers.BooleanField()
    expires_at = serializers.DateTimeField(allow_null=True)
    allocated_by = serializers.CharField(source="allocated_by.username", allow_null=True, default=None)
    revoked_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PoolStatusSerializer(CreditPoolSerializer):
    """The pool, plus the caller's own active allocation (``null`` when they hold none)."""

    # The caller's allocation is passed in as ``context["my_allocation"]``.

    utilization_percent = serializers.SerializerMethodField(help_text="used / total * 100, 2 decimals")
    my_allocation = serializers.SerializerMethodField()

    @extend_schema_field(serializers.DecimalField(max_digits=5, decimal_places=2))
    def get_utilization_percent(self, pool: Any) -> Decimal:
        if not pool.total_credits:
            return Decimal("0.00")
        return (Decimal(pool.used_credits) * 100 / pool.total_credits).quantize(Decimal("0.01"))

    @extend_schema_field(AllocationSerializer(allow_null=True))
    def get_my_allocation(self, pool: Any) -> dict[str, Any] | None:
        allocation: UserCreditAllocation | None = self.context.get("my_allocation")
        return AllocationSerializer(allocation).data if allocation is not None else None


class SubscriptionCreatedSerializer(serializers.Serializer):
    subscription = SubscriptionSerializer()
    organization = OrganizationSummarySerializer()
    credit_pool = CreditPoolSerializer()


class SubscriptionDetailSerializer(serializers.Serializer):
    subscription = SubscriptionSerializer()
    plan = PlanSerializer(source="subscription.plan")


class CreditsAddedSerializer(serializers.Serializer):
    credit_pool = CreditPoolSerializer()
    credits_added = Credits()
    purchase_amount = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    history_id = serializers.IntegerField(help_text="The billing-history row recording this addition")


class CreditPurchaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    org_id = serializers.CharField()
    status = serializers.ChoiceField(choices=CreditPurchase.Status.choices)
    credits = Credits()
    amount_usd = serializers.DecimalField(source="amount", max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    checkout_url = serializers.URLField(help_text="Send the buyer here to pay (Stripe Checkout).")
    checkout_expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class CreditCheckoutSerializer(serializers.Serializer):
    purchase = CreditPurchaseSerializer()
    checkout_url = serializers.URLField(help_text="Stripe Checkout page; credits are added once it is paid.")


class AllocationChangeSerializer(serializers.Serializer):
    allocation = AllocationSerializer()
    pool_updated = CreditPoolSerializer()


class AllocationRevokedSerializer(AllocationChangeSerializer):
    revoked = serializers.BooleanField()
    returned_to_pool = Credits(help_text="Unused credits returned to the pool")


class TransferSerializer(serializers.Serializer):
    from_allocation = AllocationSerializer()
    to_allocation = AllocationSerializer()
    credits = Credits()
