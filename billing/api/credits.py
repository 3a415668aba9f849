"""Credit-pool endpoints: pool status, adding credits to the pool, allocating to a member."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api import examples
from billing.api.common import ORG_ID_PARAM, caller, user_by_id, valid_input
from billing.api.serializers import (
    AllocateInput,
    AllocationChangeSerializer,
    CreditsAddedSerializer,
    CreditsAddInput,
    PoolStatusSerializer,
)
from billing.errors import PaymentsNotConfigured
from billing.selectors.ledger import active_allocation, pool_of
from billing.services import add_credits_to_pool, allocate_credits_to_user
from organizations.selectors import org_access, org_admin_access
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


class CreditsAddView(APIView):
    @extend_schema(
        operation_id="org_billing_credits_add",
        summary="Add credits to the pool (system admins grant; card purchases are not available yet)",
        description=(
            "A system admin grants credits, or records a purchase when `purchase_amount` (USD) is "
            "given. Org admins get 503 `payments_not_configured` until card checkout exists; "
            "members get 403. Accepts an `Idempotency-Key` header."
        ),
        tags=TAGS,
        parameters=[ORG_ID_PARAM],
        request=CreditsAddInput,
        responses={200: CreditsAddedSerializer, **error_responses(400, 401, 403, 404, 409, 429, 503)},
        examples=[
            example(
                "purchase record",
                {"credits": 5000.0, "purchase_amount": 50.0, "description": "Invoice 2026-001"},
                request=True,
            ),
            example(
                "added",
                {
                    "credit_pool": {**examples.POOL, "total_credits": 15000.0, "available_credits": 10000.0},
                    "credits_added": 5000.0,
                    "purchase_amount": 50.0,
                    "history_id": 41,
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(CreditsAddInput, request)
        if access.role != "system_admin":
            raise PaymentsNotConfigured(details={"org_id": org_id})
        change = add_credits_to_pool(
            org_id=access.org.id,
            amount=data["credits"],
            purchase_amount=data.get("purchase_amount"),
            actor=caller(request),
            description=data.get("description", ""),
        )
        return Response(
            CreditsAddedSerializer(
                {
                    "credit_pool": change.pool,
                    "credits_added": data["credits"],
                    "purchase_amount": data.get("purchase_amount"),
                    "history_id": change.history.pk if change.history else None,
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
