"""Credit-pool endpoints: pool status, adding (granting or buying) credits, allocating to a member."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api import examples
from billing.api.common import ORG_ID_PARAM, user_by_id, valid_input
from billing.api.serializers import (
    AllocateInput,
    AllocationChangeSerializer,
    CreditCheckoutSerializer,
    CreditsAddedSerializer,
    CreditsAddInput,
    PoolStatusSerializer,
)
from billing.models import CreditPurchase
from billing.selectors.ledger import active_allocation, pool_of
from billing.services import allocate_credits_to_user
from billing.services.credits import credits_add
from organizations.api.common import caller
from organizations.permissions import org_access, org_admin_access
from orgbilling.api.idempotency import idempotent
from orgbilling.api.schema import error_responses, example

TAGS = ["credits"]


class CreditPoolView(APIView):
    @extend_schema(
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
    def get(self, request: Request, org_id: str) -> Response:
        access = org_access(user=caller(request), org_id=org_id)
        mine = active_allocation(org=access.org, user=caller(request))
        return Response(PoolStatusSerializer(pool_of(org=access.org), context={"my_allocation": mine}).data)


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


class CreditsAddView(APIView):
    @extend_schema(
        operation_id="org_billing_credits_add",
        summary="Add credits: system admins grant them; org admins buy them by card (Stripe Checkout)",
        description=(
            "A **system admin** grants `credits` at once (200), or records an off-line purchase when "
            "`purchase_amount` (USD) is given. An **org admin** buys `credits` (or credits worth "
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
            example("buy by card", {"credits": 5000.0}, request=True),
            example("buy for an amount", {"amount_usd": 50.0}, request=True),
            example(
                "added",
                {
                    "credit_pool": {**examples.POOL, "total_credits": 15000.0, "available_credits": 10000.0},
                    "credits_added": 5000.0,
                    "purchase_amount": 50.0,
                    "history_id": 41,
                },
            ),
            example("checkout opened", _CHECKOUT_EXAMPLE, status=201),
        ],
    )
    @idempotent
    def post(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(CreditsAddInput, request)
        result = credits_add(
            access=access,
            actor=caller(request),
            credits=data.get("credits"),
            amount_usd=data.get("amount_usd"),
            purchase_amount=data.get("purchase_amount"),
            description=data.get("description"),
        )
        if isinstance(result, CreditPurchase):
            body = {"purchase": result, "checkout_url": result.checkout_url}
            return Response(CreditCheckoutSerializer(body).data, status=status.HTTP_201_CREATED)
        return Response(
            CreditsAddedSerializer(
                {
                    "credit_pool": result.change.pool,
                    "credits_added": result.credits,
                    "purchase_amount": result.purchase_amount,
                    "history_id": result.change.history.pk if result.change.history else None,
                }
            ).data
        )


class CreditsAllocateView(APIView):
    @extend_schema(
        operation_id="org_billing_credits_allocate",
        summary="Allocate pool credits to a member (org admins); raises an existing allocation",
        description="Accepts an `Idempotency-Key` header.",
        tags=TAGS,
        parameters=[ORG_ID_PARAM],
        request=AllocateInput,
        responses={200: AllocationChangeSerializer, **error_responses(400, 401, 403, 404, 409, 429)},
        examples=[
            example("allocate", {"user_id": "e2e-user-123", "credits": 5000.0}, request=True),
            example("allocated", {"allocation": examples.ALLOCATION, "pool_updated": examples.POOL}),
        ],
    )
    @idempotent
    def post(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(AllocateInput, request)
        change = allocate_credits_to_user(
            org_id=access.org.id,
            user=user_by_id(data["user_id"]),
            amount=data["credits"],
            actor=caller(request),
            expires_at=data.get("expires_at"),
        )
        return Response(
            AllocationChangeSerializer({"allocation": change.allocation, "pool_updated": change.pool}).data
        )
