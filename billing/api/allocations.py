"""Allocation endpoints: list, adjust, revoke, and transfer credits between members."""

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api import examples
from billing.api.common import ORG_ID_PARAM, USER_ID_PARAM, user_by_id, valid_input
from billing.api.serializers import (
    AllocationAdjustInput,
    AllocationChangeSerializer,
    AllocationRevokedSerializer,
    AllocationSerializer,
    TransferInput,
    TransferSerializer,
)
from billing.models import UserCreditAllocation
from billing.selectors.ledger import allocations_visible_to
from billing.services import adjust_allocation, revoke_allocation, transfer_credits
from organizations.api.common import caller
from organizations.permissions import org_access, org_admin_access
from orgbilling.api.idempotency import idempotent
from orgbilling.api.schema import error_responses, example

TAGS = ["allocations"]


class AllocationFilter(filters.FilterSet):
    user_id = filters.CharFilter(field_name="user__username", help_text="Only this member's allocations")
    # A choice rather than a BooleanFilter, which would read "maybe" as absent instead of refusing it.
    include_inactive = filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="keep_all",
        help_text="`true` includes revoked allocations (default: active only)",
    )

    class Meta:
        model = UserCreditAllocation
        fields: list[str] = []

    def keep_all(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset  # applied in filter_queryset, which also sees the default (absent)

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = super().filter_queryset(queryset)
        if self.form.cleaned_data.get("include_inactive") != "true":
            queryset = queryset.filter(is_active=True)
        return queryset


@extend_schema_view(
    get=extend_schema(
        operation_id="org_billing_allocations_list",
        summary="Allocations of the organization (org admins: all; members: their own)",
        tags=TAGS,
        parameters=[ORG_ID_PARAM],
        responses={200: AllocationSerializer(many=True), **error_responses(400, 401, 404, 429)},
        examples=[
            example(
                "one page",
                {"count": 1, "next": None, "previous": None, "results": [examples.ALLOCATION]},
            )
        ],
    )
)
class AllocationListView(ListAPIView):
    serializer_class = AllocationSerializer
    filterset_class = AllocationFilter

    def get_queryset(self) -> QuerySet[UserCreditAllocation]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return UserCreditAllocation.objects.none()
        user = caller(self.request)
        access = org_access(user=user, org_id=self.kwargs["org_id"])
        return allocations_visible_to(org=access.org, user=user, is_admin=access.is_admin)


class AllocationDetailView(APIView):
    @extend_schema(
        operation_id="org_billing_allocation_adjust",
        summary="Set a member's allocated total (org admins); never below what is used or held",
        tags=TAGS,
        parameters=[ORG_ID_PARAM, USER_ID_PARAM],
        request=AllocationAdjustInput,
        responses={200: AllocationChangeSerializer, **error_responses(400, 401, 402, 403, 404, 409, 429)},
        examples=[
            example("set to 3000", {"credits": 3000.0}, request=True),
            example(
                "adjusted",
                {
                    "allocation": {
                        **examples.ALLOCATION,
                        "allocated_credits": 3000.0,
                        "remaining_credits": 2879.5,
                    },
                    "pool_updated": {
                        **examples.POOL,
                        "allocated_credits": 3000.0,
                        "available_credits": 7000.0,
                    },
                },
            ),
        ],
    )
    def patch(self, request: Request, org_id: str, user_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(AllocationAdjustInput, request)
        change = adjust_allocation(
            org_id=access.org.id, user=user_by_id(user_id), allocated=data["credits"], actor=caller(request)
        )
        return Response(
            AllocationChangeSerializer({"allocation": change.allocation, "pool_updated": change.pool}).data
        )

    @extend_schema(
        operation_id="org_billing_allocation_revoke",
        summary="Revoke a member's allocation (org admins); its unused credits return to the pool",
        tags=TAGS,
        parameters=[ORG_ID_PARAM, USER_ID_PARAM],
        request=None,
        responses={200: AllocationRevokedSerializer, **error_responses(401, 402, 403, 404, 409, 429)},
        examples=[
            example(
                "revoked",
                {
                    "revoked": True,
                    "allocation": {
                        **examples.ALLOCATION,
                        "allocated_credits": 120.5,
                        "remaining_credits": 0.0,
                        "is_active": False,
                        "revoked_at": "2026-01-03T00:00:00Z",
                    },
                    "returned_to_pool": 4879.5,
                    "pool_updated": {
                        **examples.POOL,
                        "allocated_credits": 120.5,
                        "available_credits": 9879.5,
                    },
                },
            )
        ],
    )
    def delete(self, request: Request, org_id: str, user_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        change = revoke_allocation(org_id=access.org.id, user=user_by_id(user_id), actor=caller(request))
        return Response(
            AllocationRevokedSerializer(
                {
                    "revoked": True,
                    "allocation": change.allocation,
                    "returned_to_pool": change.returned_to_pool,
                    "pool_updated": change.pool,
                }
            ).data
        )


class CreditTransferView(APIView):
    @extend_schema(
        operation_id="org_billing_credits_transfer",
        summary="Move free credits from one member's allocation to another's (org admins)",
        description="The pool's totals do not change. Accepts an `Idempotency-Key` header.",
        tags=TAGS,
        parameters=[ORG_ID_PARAM],
        request=TransferInput,
        responses={200: TransferSerializer, **error_responses(400, 401, 402, 403, 404, 409, 429)},
        examples=[
            example(
                "transfer",
                {"from_user_id": "e2e-user-123", "to_user_id": "teammate-42", "credits": 250.0},
                request=True,
            ),
            example(
                "transferred",
                {
                    "from_allocation": {
                        **examples.ALLOCATION,
                        "allocated_credits": 4750.0,
                        "remaining_credits": 4629.5,
                    },
                    "to_allocation": {
                        **examples.ALLOCATION,
                        "id": 8,
                        "user_id": "teammate-42",
                        "allocated_credits": 250.0,
                        "used_credits": 0.0,
                        "remaining_credits": 250.0,
                    },
                    "credits": 250.0,
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(TransferInput, request)
        result = transfer_credits(
            org_id=access.org.id,
            from_user=user_by_id(data["from_user_id"]),
            to_user=user_by_id(data["to_user_id"]),
            amount=data["credits"],
            actor=caller(request),
        )
        return Response(
            TransferSerializer(
                {"from_allocation": result.source, "to_allocation": result.target, "credits": result.amount}
            ).data
        )
