"""Allocation endpoints: list, adjust, revoke, and transfer credits between members."""

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_view
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import user_by_id, valid_input
from billing.api.serializers.allocations import (
    ALLOCATION_ADJUST_SCHEMA,
    ALLOCATION_LIST_SCHEMA,
    ALLOCATION_REVOKE_SCHEMA,
    CREDITS_TRANSFER_SCHEMA,
    AllocationAdjustInput,
    AllocationRevokedSerializer,
    TransferInput,
    TransferSerializer,
)
from billing.api.serializers.credits import AllocationChangeSerializer, AllocationSerializer
from billing.models import UserCreditAllocation
from billing.permissions import AllocationAuthority, allocation_access, allocation_writer_access
from billing.selectors.departments import allocation_department_id
from billing.selectors.ledger import allocations_visible_to
from billing.services import KEEP, adjust_allocation, revoke_allocation, transfer_credits
from organizations.api.common import caller
from organizations.permissions import org_access
from orgbilling.api.idempotency import idempotent


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


@extend_schema_view(get=ALLOCATION_LIST_SCHEMA)
class AllocationListView(ListAPIView):
    serializer_class = AllocationSerializer
    filterset_class = AllocationFilter

    def get_queryset(self) -> QuerySet[UserCreditAllocation]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return UserCreditAllocation.objects.none()
        user = caller(self.request)
        access = org_access(user=user, org_id=self.kwargs["org_id"])
        return allocations_visible_to(org=access.org, user=user, is_admin=access.is_admin)


def _authority_over(request: Request, org_id: str, user_id: str) -> AllocationAuthority:
    """Who may write the member's active allocation: org admins, or the manager of its
    department (the service re-checks the department under its locks)."""
    access = allocation_writer_access(user=caller(request), org_id=org_id)
    department_id = allocation_department_id(org_id=access.org.id, user=user_by_id(user_id))
    return allocation_access(user=caller(request), org_id=org_id, department_id=department_id)


class AllocationDetailView(APIView):
    @ALLOCATION_ADJUST_SCHEMA
    def patch(self, request: Request, org_id: str, user_id: str) -> Response:
        authority = _authority_over(request, org_id, user_id)
        data = valid_input(AllocationAdjustInput, request)
        change = adjust_allocation(
            org_id=authority.access.org.id,
            user=user_by_id(user_id),
            allocated=data["credits"],
            actor=caller(request),
            only_department_id=authority.department_id,
            daily_cap=data.get("daily_cap_credits", KEEP),
            period=data["period_change"],
        )
        return Response(
            AllocationChangeSerializer({"allocation": change.allocation, "pool_updated": change.pool}).data
        )

    @ALLOCATION_REVOKE_SCHEMA
    def delete(self, request: Request, org_id: str, user_id: str) -> Response:
        authority = _authority_over(request, org_id, user_id)
        change = revoke_allocation(
            org_id=authority.access.org.id,
            user=user_by_id(user_id),
            actor=caller(request),
            only_department_id=authority.department_id,
        )
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
    @CREDITS_TRANSFER_SCHEMA
    @idempotent
    def post(self, request: Request, org_id: str) -> Response:
        allocation_writer_access(user=caller(request), org_id=org_id)  # 404, then 403, before input
        data = valid_input(TransferInput, request)
        authority = _authority_over(request, org_id, data["from_user_id"])
        result = transfer_credits(
            org_id=authority.access.org.id,
            from_user=user_by_id(data["from_user_id"]),
            to_user=user_by_id(data["to_user_id"]),
            amount=data["credits"],
            actor=caller(request),
            only_department_id=authority.department_id,
        )
        return Response(
            TransferSerializer(
                {"from_allocation": result.source, "to_allocation": result.target, "credits": result.amount}
            ).data
        )
