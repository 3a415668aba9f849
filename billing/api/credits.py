"""Credit-pool endpoints: pool status, adding (granting or buying) credits, allocating to a member."""

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import user_by_id, valid_input
from billing.api.serializers.credits import (
    CREDIT_POOL_SCHEMA,
    CREDITS_ADD_SCHEMA,
    CREDITS_ALLOCATE_SCHEMA,
    AllocateInput,
    AllocationChangeSerializer,
    CreditCheckoutSerializer,
    CreditsAddedSerializer,
    CreditsAddInput,
    PoolStatusSerializer,
)
from billing.models import CreditPurchase
from billing.permissions import allocation_access, allocation_writer_access
from billing.selectors.ledger import active_allocation, pool_of
from billing.services import KEEP, allocate_credits_to_user
from billing.services.credits import GrantTerms, credits_add
from organizations.api.common import caller
from organizations.permissions import org_access, org_admin_access
from orgbilling.api.idempotency import idempotent


class CreditPoolView(APIView):
    @CREDIT_POOL_SCHEMA
    def get(self, request: Request, org_id: str) -> Response:
        access = org_access(user=caller(request), org_id=org_id)
        mine = active_allocation(org=access.org, user=caller(request))
        return Response(PoolStatusSerializer(pool_of(org=access.org), context={"my_allocation": mine}).data)


class CreditsAddView(APIView):
    @CREDITS_ADD_SCHEMA
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
            grant_terms=GrantTerms(
                expires_at=data.get("expires_at"), priority=data.get("priority"), source=data.get("source")
            ),
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
                    "grant_id": result.change.grant.pk if result.change.grant else None,
                }
            ).data
        )


class CreditsAllocateView(APIView):
    @CREDITS_ALLOCATE_SCHEMA
    @idempotent
    def post(self, request: Request, org_id: str) -> Response:
        allocation_writer_access(user=caller(request), org_id=org_id)  # 404, then 403, before input
        data = valid_input(AllocateInput, request)
        authority = allocation_access(
            user=caller(request), org_id=org_id, department_id=data.get("department_id")
        )
        change = allocate_credits_to_user(
            org_id=authority.access.org.id,
            user=user_by_id(data["user_id"]),
            amount=data["credits"],
            actor=caller(request),
            expires_at=data.get("expires_at"),
            department_id=data.get("department_id"),
            daily_cap=data.get("daily_cap_credits", KEEP),
            period=data["period_change"],
        )
        return Response(
            AllocationChangeSerializer({"allocation": change.allocation, "pool_updated": change.pool}).data
        )
