"""Credit request endpoints: ask, list, approve, decline, cancel."""

from collections.abc import Callable

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import valid_input
from billing.api.serializers.credit_requests import (
    CREDIT_REQUEST_APPROVE_SCHEMA,
    CREDIT_REQUEST_CANCEL_SCHEMA,
    CREDIT_REQUEST_CREATE_SCHEMA,
    CREDIT_REQUEST_DECLINE_SCHEMA,
    CREDIT_REQUEST_LIST_SCHEMA,
    CreditRequestDecisionInput,
    CreditRequestFilterInput,
    CreditRequestInput,
    CreditRequestSerializer,
)
from billing.models import CreditRequest
from billing.permissions import credit_request_decider_access
from billing.selectors.credit_requests import credit_request_visible_to, credit_requests_visible_to
from billing.services.credit_requests import (
    approve_credit_request,
    cancel_credit_request,
    decline_credit_request,
    request_credits,
)
from organizations.api.common import caller
from organizations.permissions import org_access
from orgbilling.api.idempotency import idempotent


@extend_schema_view(get=CREDIT_REQUEST_LIST_SCHEMA)
class CreditRequestListView(ListAPIView):
    serializer_class = CreditRequestSerializer

    def get_queryset(self) -> QuerySet[CreditRequest]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return CreditRequest.objects.none()
        user = caller(self.request)
        access = org_access(user=user, org_id=self.kwargs["org_id"])
        query = CreditRequestFilterInput(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        requests = credit_requests_visible_to(org=access.org, user=user, is_admin=access.is_admin)
        if "status" in query.validated_data:
            requests = requests.filter(status=query.validated_data["status"])
        return requests

    @CREDIT_REQUEST_CREATE_SCHEMA
    @idempotent
    def post(self, request: Request, org_id: str) -> Response:
        access = org_access(user=caller(request), org_id=org_id)
        data = valid_input(CreditRequestInput, request)
        created = request_credits(
            org_id=access.org.id, requester=caller(request), credits=data["credits"], reason=data["reason"]
        )
        return Response(CreditRequestSerializer(created).data, status=status.HTTP_201_CREATED)


def _decide(request: Request, org_id: str, request_id: int, decide: Callable[..., CreditRequest]) -> Response:
    """Approve or decline: the caller must be able to decide the org's (or their departments')
    requests; the service enforces the rest (never one's own, pending only)."""
    access, deciders = credit_request_decider_access(user=caller(request), org_id=org_id)
    data = valid_input(CreditRequestDecisionInput, request)
    decided = decide(
        org_id=access.org.id,
        request_id=request_id,
        actor=caller(request),
        deciders=deciders,
        note=data.get("note", ""),
    )
    return Response(CreditRequestSerializer(decided).data)


class CreditRequestApproveView(APIView):
    @CREDIT_REQUEST_APPROVE_SCHEMA
    def post(self, request: Request, org_id: str, request_id: int) -> Response:
        return _decide(request, org_id, request_id, approve_credit_request)


class CreditRequestDeclineView(APIView):
    @CREDIT_REQUEST_DECLINE_SCHEMA
    def post(self, request: Request, org_id: str, request_id: int) -> Response:
        return _decide(request, org_id, request_id, decline_credit_request)


class CreditRequestCancelView(APIView):
    @CREDIT_REQUEST_CANCEL_SCHEMA
    def post(self, request: Request, org_id: str, request_id: int) -> Response:
        user = caller(request)
        access = org_access(user=user, org_id=org_id)
        # One the caller may not see is 404 (ids cannot be probed); one they see but did not make, 403.
        credit_request_visible_to(org=access.org, user=user, is_admin=access.is_admin, request_id=request_id)
        cancelled = cancel_credit_request(org_id=access.org.id, request_id=request_id, actor=user)
        return Response(CreditRequestSerializer(cancelled).data)
