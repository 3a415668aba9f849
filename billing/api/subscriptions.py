"""Subscription endpoints: create (with the organization when new), read, change plan, cancel."""

from typing import cast

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from billing.api.common import user_by_id, valid_input
from billing.api.serializers.subscriptions import (
    SUBSCRIPTION_CANCEL_SCHEMA,
    SUBSCRIPTION_CHANGE_PLAN_SCHEMA,
    SUBSCRIPTION_CREATE_SCHEMA,
    SUBSCRIPTION_RETRIEVE_SCHEMA,
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
from orgbilling.api.throttling import SubscriptionChangeThrottle
from orgbilling.errors import Forbidden

# The default read/write throttles plus the 5/hour limit on subscription changes.
SUBSCRIPTION_THROTTLES: list[type[BaseThrottle]] = [
    *cast("list[type[BaseThrottle]]", api_settings.DEFAULT_THROTTLE_CLASSES),
    SubscriptionChangeThrottle,
]


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

    @SUBSCRIPTION_CREATE_SCHEMA
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
    @SUBSCRIPTION_RETRIEVE_SCHEMA
    def get(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        subscription = live_subscription(org=access.org)
        return Response(SubscriptionDetailSerializer({"subscription": subscription}).data)


class SubscriptionUpgradeView(APIView):
    throttle_classes = SUBSCRIPTION_THROTTLES

    @SUBSCRIPTION_CHANGE_PLAN_SCHEMA
    def put(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(PlanChangeInput, request)
        subscription = change_subscription_plan(
            org_id=access.org.id, plan_code=data["plan_code"], actor=caller(request)
        )
        return Response(SubscriptionDetailSerializer({"subscription": subscription}).data)


class SubscriptionCancelView(APIView):
    throttle_classes = SUBSCRIPTION_THROTTLES

    @SUBSCRIPTION_CANCEL_SCHEMA
    def post(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        valid_input(EmptyInput, request)
        subscription = cancel_subscription(org_id=access.org.id, actor=caller(request))
        return Response(SubscriptionDetailSerializer({"subscription": subscription}).data)
