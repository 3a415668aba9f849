"""Subscriptions: creating one (with the organization when new), reading it, changing its plan,
cancelling it: serializers, then the endpoints' OpenAPI schemas."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from billing.api.serializers.credits import CreditPoolSerializer
from billing.api.serializers.fields import ORG_ID_PARAM, CreditsIn, user_id_field
from billing.models import OrganizationSubscription
from organizations.models import ORG_ID_VALIDATOR
from orgbilling.api.fields import StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example

# --- input ---------------------------------------------------------------------------------


class SubscriptionCreateInput(StrictSerializer):
    org_id = StrictCharField(max_length=64, validators=[ORG_ID_VALIDATOR])
    plan_code = StrictCharField(max_length=64, help_text="`starter`, `professional` or `enterprise`")
    org_name = StrictCharField(max_length=200, required=False, help_text="For a new organization.")
    billing_email = serializers.EmailField(required=False, allow_blank=True)
    initial_credits = CreditsIn(required=False, help_text="System admins only: credits granted to the pool.")
    user_id = user_id_field(
        required=False,
        help_text="Who becomes the org admin. System admins may name anyone; others only themselves.",
    )


class PlanChangeInput(StrictSerializer):
    plan_code = StrictCharField(max_length=64)


class EmptyInput(StrictSerializer):
    """No fields: any field sent is refused."""


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


class SubscriptionCreatedSerializer(serializers.Serializer):
    subscription = SubscriptionSerializer()
    organization = OrganizationSummarySerializer()
    credit_pool = CreditPoolSerializer()


class SubscriptionDetailSerializer(serializers.Serializer):
    subscription = SubscriptionSerializer()
    plan = PlanSerializer(source="subscription.plan")


# --- OpenAPI -------------------------------------------------------------------------------

TAGS = ["subscriptions"]

_SUBSCRIPTION_EXAMPLE = {
    "id": 12,
    "org_id": "org_abc123",
    "plan_code": "professional",
    "plan_name": "Professional",
    "status": "active",
    "monthly_price": 49.0,
    "currency": "USD",
    "current_period_start": "2026-01-01T00:00:00Z",
    "current_period_end": "2026-01-31T00:00:00Z",
    "canceled_at": None,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}
_PLAN_EXAMPLE = {
    "plan_code": "professional",
    "name": "Professional",
    "monthly_price": 49.0,
    "currency": "USD",
    "rate_limit_tier": "standard",
    "monthly_api_calls": 100000,
}

SUBSCRIPTION_CREATE_SCHEMA = extend_schema(
    operation_id="org_billing_subscription_create",
    summary="Subscribe an organization to a plan (creating the organization when new)",
    description=(
        "The caller becomes the new organization's admin (a system admin may name another "
        "`user_id`). An existing organization can be subscribed by its admins (403 for its "
        "members; 409 `conflict` when the id belongs to someone else's organization). "
        "`initial_credits` are granted by system admins only; anyone else gets 402 "
        "`payment_required`. Accepts an `Idempotency-Key` header."
    ),
    tags=TAGS,
    request=SubscriptionCreateInput,
    responses={
        201: SubscriptionCreatedSerializer,
        **error_responses(400, 401, 402, 403, 404, 409, 429, 503),
    },
    examples=[
        example(
            "professional plan with credits",
            {
                "org_id": "org_abc123",
                "plan_code": "professional",
                "org_name": "Acme AI",
                "billing_email": "billing@acme.test",
                "initial_credits": 10000.0,
                "user_id": "e2e-user-123",
            },
            request=True,
        ),
        example(
            "created",
            {
                "subscription": _SUBSCRIPTION_EXAMPLE,
                "organization": {
                    "id": "org_abc123",
                    "org_name": "Acme AI",
                    "slug": "org_abc123",
                    "billing_email": "billing@acme.test",
                },
                "credit_pool": {
                    "org_id": "org_abc123",
                    "total_credits": 10000.0,
                    "allocated_credits": 0.0,
                    "used_credits": 0.0,
                    "available_credits": 10000.0,
                },
            },
            status=201,
        ),
    ],
)

SUBSCRIPTION_RETRIEVE_SCHEMA = extend_schema(
    operation_id="org_billing_subscription_retrieve",
    summary="The organization's live subscription and its plan (org admins)",
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    responses={200: SubscriptionDetailSerializer, **error_responses(401, 403, 404, 429)},
    examples=[example("active", {"subscription": _SUBSCRIPTION_EXAMPLE, "plan": _PLAN_EXAMPLE})],
)

SUBSCRIPTION_CHANGE_PLAN_SCHEMA = extend_schema(
    operation_id="org_billing_subscription_change_plan",
    summary="Move the live subscription to another plan (org admins)",
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    request=PlanChangeInput,
    responses={200: SubscriptionDetailSerializer, **error_responses(400, 401, 403, 404, 409, 429, 503)},
    examples=[
        example("to enterprise", {"plan_code": "enterprise"}, request=True),
        example(
            "changed",
            {
                "subscription": {
                    **_SUBSCRIPTION_EXAMPLE,
                    "plan_code": "enterprise",
                    "plan_name": "Enterprise",
                },
                "plan": {**_PLAN_EXAMPLE, "plan_code": "enterprise", "name": "Enterprise"},
            },
        ),
    ],
)

SUBSCRIPTION_CANCEL_SCHEMA = extend_schema(
    operation_id="org_billing_subscription_cancel",
    summary="Cancel the live subscription (org admins); credits already bought stay",
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    request=None,
    responses={200: SubscriptionDetailSerializer, **error_responses(400, 401, 403, 404, 429, 503)},
    examples=[
        example(
            "canceled",
            {
                "subscription": {
                    **_SUBSCRIPTION_EXAMPLE,
                    "status": "canceled",
                    "canceled_at": "2026-01-15T00:00:00Z",
                },
                "plan": _PLAN_EXAMPLE,
            },
        )
    ],
)
