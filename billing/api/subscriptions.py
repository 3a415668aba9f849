"""Subscription endpoints: create (with the organization when new), read, change plan, cancel."""

from typing import cast

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from billing.api.common import ORG_ID_PARAM, user_by_id, valid_input
from billing.api.serializers import (
    EmptyInput,
    PlanChangeInput,
    SubscriptionCreatedSerializer,
    SubscriptionCreateInput,
    SubscriptionDetailSerializer,
)
from billing.errors import PaymentRequired
from billing.selectors.ledger import live_subscription
from billing.services.subscriptions import (
    cancel_subscription,
    change_subscription_plan,
    create_subscription,
)
from organizations.api.common import caller
from organizations.models import User
from organizations.permissions import acts_as_system_admin, org_admin_access
from orgbilling.api.idempotency import idempotent
from orgbilling.api.schema import error_responses, example
from orgbilling.api.throttling import SubscriptionChangeThrottle
from orgbilling.errors import Forbidden

TAGS = ["subscriptions"]
# The default read/write throttles plus the 5/hour limit on subscription changes.
SUBSCRIPTION_THROTTLES: list[type[BaseThrottle]] = [
    *cast("list[type[BaseThrottle]]", api_settings.DEFAULT_THROTTLE_CLASSES),
    SubscriptionChangeThrottle,
]

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


def _subscription_owner(request: Request, org_id: str, user_id: str | None) -> User:
    """Who becomes the org admin: the caller, or ``user_id`` when a system admin names one."""
    user = caller(request)
    if user_id is None or user_id == user.username:
        return user
    if not acts_as_system_admin(user, org_id=org_id):
        raise Forbidden(
            "Only system admins can subscribe an organization on behalf of another user.",
            details={"user_id": user_id},
        )
    return user_by_id(user_id)


class SubscriptionCreateView(APIView):
    throttle_classes = SUBSCRIPTION_THROTTLES

    @extend_schema(
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
    @idempotent(atomic=False)  # calls Lago mid-way; the subscription service dedupes
    def post(self, request: Request) -> Response:
        data = valid_input(SubscriptionCreateInput, request)
        actor = caller(request)
        owner = _subscription_owner(request, data["org_id"], data.get("user_id"))
        if data.get("initial_credits") and not acts_as_system_admin(actor, org_id=data["org_id"]):
            raise PaymentRequired(
                "Only system admins grant initial credits; buy credits after subscribing.",
                details={"initial_credits": "system admins only"},
            )
        change = create_subscription(
            org_id=data["org_id"],
            plan_code=data["plan_code"],
            owner=owner,
            actor=actor,
            org_name=data.get("org_name", ""),
            billing_email=data.get("billing_email", ""),
            initial_credits=data.get("initial_credits"),
        )
        body = SubscriptionCreatedSerializer(
            {"subscription": change.subscription, "organization": change.org, "credit_pool": change.pool}
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class SubscriptionDetailView(APIView):
    @extend_schema(
        operation_id="org_billing_subscription_retrieve",
        summary="The organization's live subscription and its plan (org admins)",
        tags=TAGS,
        parameters=[ORG_ID_PARAM],
        responses={200: SubscriptionDetailSerializer, **error_responses(401, 403, 404, 429)},
        examples=[example("active", {"subscription": _SUBSCRIPTION_EXAMPLE, "plan": _PLAN_EXAMPLE})],
    )
    def get(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        subscription = live_subscription(org=access.org)
        return Response(SubscriptionDetailSerializer({"subscription": subscription}).data)


class SubscriptionUpgradeView(APIView):
    throttle_classes = SUBSCRIPTION_THROTTLES

    @extend_schema(
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
    def put(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(PlanChangeInput, request)
        subscription = change_subscription_plan(
            org_id=access.org.id, plan_code=data["plan_code"], actor=caller(request)
        )
        return Response(SubscriptionDetailSerializer({"subscription": subscription}).data)


class SubscriptionCancelView(APIView):
    throttle_classes = SUBSCRIPTION_THROTTLES

    @extend_schema(
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
    def post(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        valid_input(EmptyInput, request)
        subscription = cancel_subscription(org_id=access.org.id, actor=caller(request))
        return Response(SubscriptionDetailSerializer({"subscription": subscription}).data)
