"""The credit pool and its allocations as the API shows them; adding (granting or buying) credits
and allocating them to a member: serializers, then the endpoints' OpenAPI schemas."""

from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers

from billing.api.serializers import examples
from billing.api.serializers.departments import DepartmentIdField
from billing.api.serializers.fields import (
    ORG_ID_PARAM,
    Credits,
    CreditsIn,
    CreditsOrZeroIn,
    StrictIntegerField,
    UsdIn,
    user_id_field,
)
from billing.api.serializers.periods import PeriodSettingsInput
from billing.ledger.eligibility import day_spent, utc_day
from billing.models import CreditGrant, CreditPurchase, UserCreditAllocation
from billing.models.grants import DEFAULT_GRANT_PRIORITY, MAX_GRANT_PRIORITY
from billing.money import millicredits_to_credits
from orgbilling.api.fields import StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example

# --- input ---------------------------------------------------------------------------------


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
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="System admins: the grant's unspent credits leave the pool then (future; omit: never).",
    )
    priority = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=MAX_GRANT_PRIORITY,
        help_text=(
            f"System admins: burn-down order, a lower number spent first (default {DEFAULT_GRANT_PRIORITY})."
        ),
    )
    # A field named like DRF's ``Field.source`` attribute: the API's name wins.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        required=False,
        choices=[CreditGrant.Source.MANUAL, CreditGrant.Source.PROMOTION],
        help_text="System admins: `manual` (default) or `promotion`.",
    )

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("credits" in attrs) == ("amount_usd" in attrs):
            raise serializers.ValidationError({"credits": "Give either credits or amount_usd."})
        return attrs


class AllocateInput(PeriodSettingsInput, StrictSerializer):
    user_id = user_id_field()
    credits = CreditsIn(help_text="Credits added to the member's allocation.")
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Must be in the future; omit for no expiry."
    )
    department_id = DepartmentIdField(
        required=False,
        allow_null=True,
        help_text=(
            "Carve the credits from this department's budget instead of the pool (department "
            "managers: required, one of theirs). The member's active allocation must be in it."
        ),
    )

    daily_cap_credits = CreditsOrZeroIn(
        required=False,
        allow_null=True,
        help_text=(
            "Credits the member may charge or hold per UTC day (402 `daily_cap_reached` beyond); "
            "null removes the cap; omit to keep it."
        ),
    )

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.")
        return value


# --- output --------------------------------------------------------------------------------


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
    department_id = serializers.IntegerField(
        allow_null=True, help_text="The department whose budget it is carved from (null: the pool)"
    )
    allocated_credits = Credits()
    used_credits = Credits()
    reserved_credits = Credits(help_text="held by calls in flight")
    remaining_credits = Credits(source="free_credits", help_text="allocated - used - reserved")
    is_active = serializers.BooleanField()
    expires_at = serializers.DateTimeField(allow_null=True)
    daily_cap_credits = Credits(allow_null=True, help_text="Per UTC day; null: no cap")
    spent_today_credits = serializers.SerializerMethodField(
        help_text="Charged or held today (UTC), what the daily cap counts"
    )
    period = serializers.CharField(
        allow_null=True, help_text="daily, weekly (ISO, Monday) or monthly (UTC); null: not recurring"
    )
    period_mode = serializers.CharField(allow_null=True, help_text="reset or refill; null: not recurring")
    period_amount_credits = Credits(allow_null=True, help_text="What each period grants")
    rollover_cap_credits = Credits(allow_null=True, help_text="refill: most unspent credits carried over")
    current_period_start = serializers.DateTimeField(allow_null=True)
    next_period_start = serializers.DateTimeField(allow_null=True, help_text="The next reset or refill")
    period_used_credits = serializers.SerializerMethodField(help_text="Used since current_period_start")
    allocated_by = serializers.CharField(source="allocated_by.username", allow_null=True, default=None)
    revoked_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(Credits())
    def get_spent_today_credits(self, allocation: UserCreditAllocation) -> Decimal:
        return millicredits_to_credits(day_spent(allocation, utc_day()))

    @extend_schema_field(Credits(allow_null=True))
    def get_period_used_credits(self, allocation: UserCreditAllocation) -> Decimal | None:
        if not allocation.period:
            return None
        return millicredits_to_credits(allocation.used_credits - allocation.period_start_used_credits)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["period"] = data["period"] or None  # "" in the table: not recurring
        data["period_mode"] = data["period_mode"] or None
        return data


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


class CreditsAddedSerializer(serializers.Serializer):
    credit_pool = CreditPoolSerializer()
    credits_added = Credits()
    purchase_amount = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    history_id = serializers.IntegerField(help_text="The billing-history row recording this addition")
    grant_id = serializers.IntegerField(
        allow_null=True, help_text="The credit grant the credits entered as (null on a replay)"
    )


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


# --- OpenAPI -------------------------------------------------------------------------------

TAGS = ["credits"]

_CHECKOUT_EXAMPLE = {
    "purchase": {
        "id": 7,
        "org_id": "org_abc123",
        "status": "pending",
        "credits": 5000.0,
        "amount_usd": 50.0,
        "currency": "USD",
        "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1B2c3",
        "checkout_expires_at": "2026-01-02T10:00:00Z",
        "created_at": "2026-01-01T10:00:00Z",
    },
    "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1B2c3",
}

CREDIT_POOL_SCHEMA = extend_schema(
    operation_id="org_billing_credit_pool_retrieve",
    summary="The organization's credit pool (any member), with the caller's own allocation",
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    responses={200: PoolStatusSerializer, **error_responses(401, 404, 429)},
    examples=[
        example(
            "member view",
            {**examples.POOL, "utilization_percent": 1.21, "my_allocation": examples.ALLOCATION},
        )
    ],
)

CREDITS_ADD_SCHEMA = extend_schema(
    operation_id="org_billing_credits_add",
    summary="Add credits: system admins grant them; org admins buy them by card (Stripe Checkout)",
    description=(
        "A **system admin** grants `credits` at once (200), or records an off-line purchase when "
        "`purchase_amount` (USD) is given; the credits enter as a grant (`source` `manual` or "
        "`promotion`, optional `expires_at` and `priority`; see `GET .../grants`). An **org admin** "
        "buys `credits` (or credits worth "
        "`amount_usd`; 1 credit = $0.01): the answer (201) is a `pending` purchase with the Stripe "
        "Checkout URL to pay at; the credits are added when Stripe reports the payment (webhook), "
        "exactly once. Card purchases answer 503 `payments_not_configured` while Stripe is not "
        "configured, and 503 `billing_backend_unavailable` when Stripe is down. Members get 403. "
        "Accepts an `Idempotency-Key` header (a retry gets the same checkout)."
    ),
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    request=CreditsAddInput,
    responses={
        200: CreditsAddedSerializer,
        201: CreditCheckoutSerializer,
        **error_responses(400, 401, 403, 404, 409, 429, 503),
    },
    examples=[
        example(
            "purchase record",
            {"credits": 5000.0, "purchase_amount": 50.0, "description": "Invoice 2026-001"},
            request=True,
        ),
        example(
            "promotion with expiry",
            {"credits": 1000.0, "source": "promotion", "expires_at": "2026-03-31T00:00:00Z", "priority": 5},
            request=True,
        ),
        example("buy by card", {"credits": 5000.0}, request=True),
        example("buy for an amount", {"amount_usd": 50.0}, request=True),
        example(
            "added",
            {
                "credit_pool": {**examples.POOL, "total_credits": 15000.0, "available_credits": 10000.0},
                "credits_added": 5000.0,
                "purchase_amount": 50.0,
                "history_id": 41,
                "grant_id": 12,
            },
        ),
        example("checkout opened", _CHECKOUT_EXAMPLE, status=201),
    ],
)

CREDITS_ALLOCATE_SCHEMA = extend_schema(
    operation_id="org_billing_credits_allocate",
    summary="Allocate pool credits to a member (org admins); raises an existing allocation",
    description=(
        "With `department_id` the credits come from that department's budget (409 "
        "`allocation_exceeds_department_budget` beyond it); department managers may allocate only "
        "that way, in their own departments (403 `department_access_denied` otherwise). Accepts an "
        "`Idempotency-Key` header. With `period` the allocation recurs: each UTC day, ISO week or "
        "month it is reset (unspent credits back, the amount afresh) or refilled (topped up to the "
        'amount, unspent carried over up to `rollover_cap_credits`); README, "Recurring allocations".'
    ),
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    request=AllocateInput,
    responses={200: AllocationChangeSerializer, **error_responses(400, 401, 403, 404, 409, 429)},
    examples=[
        example("allocate", {"user_id": "e2e-user-123", "credits": 5000.0}, request=True),
        example(
            "allocate monthly, refilling",
            {
                "user_id": "e2e-user-123",
                "credits": 5000.0,
                "period": "monthly",
                "period_mode": "refill",
                "rollover_cap_credits": 1000.0,
            },
            request=True,
        ),
        example("allocated", {"allocation": examples.ALLOCATION, "pool_updated": examples.POOL}),
        example(
            "allocated, monthly refilling",
            {
                "allocation": {
                    **examples.ALLOCATION,
                    "period": "monthly",
                    "period_mode": "refill",
                    "period_amount_credits": 5000.0,
                    "rollover_cap_credits": 1000.0,
                    "current_period_start": "2026-01-01T00:00:00Z",
                    "next_period_start": "2026-02-01T00:00:00Z",
                    "period_used_credits": 120.5,
                },
                "pool_updated": examples.POOL,
            },
        ),
    ],
)
