"""Members' requests for more credits: serializers, then the endpoints' OpenAPI schemas."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from billing.api.serializers.fields import ORG_ID_PARAM, Credits, CreditsIn
from billing.models import CreditRequest
from orgbilling.api.fields import StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example

# --- input ---------------------------------------------------------------------------------


class CreditRequestInput(StrictSerializer):
    credits = CreditsIn(help_text="Credits asked for, on top of the member's allocation.")
    reason = StrictCharField(max_length=500, help_text="Why the credits are needed (shown to the deciders).")


class CreditRequestDecisionInput(StrictSerializer):
    note = StrictCharField(
        max_length=500, required=False, allow_blank=True, help_text="Told to the requester by e-mail."
    )


class CreditRequestFilterInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=CreditRequest.Status.choices, required=False)


# --- output --------------------------------------------------------------------------------


class CreditRequestSerializer(serializers.Serializer):
    request_id = serializers.IntegerField(source="pk")
    org_id = serializers.CharField()
    user_id = serializers.CharField(source="requester.username", help_text="The requester")
    credits = Credits()
    reason = serializers.CharField()
    status = serializers.ChoiceField(choices=CreditRequest.Status.choices)
    department_id = serializers.IntegerField(
        allow_null=True, help_text="The department of the requester's allocation when they asked"
    )
    created_at = serializers.DateTimeField()
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_note = serializers.CharField()
    allocation_id = serializers.IntegerField(
        allow_null=True, help_text="The allocation the approval raised (approved requests)"
    )


# --- OpenAPI -------------------------------------------------------------------------------

TAGS = ["credit requests"]

REQUEST_ID_PARAM = OpenApiParameter(
    "request_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The credit request's id"
)
STATUS_PARAM = OpenApiParameter(
    "status",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=[choice for choice, _ in CreditRequest.Status.choices],
    description="Only requests in this status",
)

REQUEST_EXAMPLE: dict[str, Any] = {
    "request_id": 7,
    "org_id": "org_abc123",
    "user_id": "mia",
    "credits": 250.0,
    "reason": "Evaluation run for the new support bot",
    "status": "pending",
    "department_id": 3,
    "created_at": "2026-12-01T09:30:00Z",
    "decided_by": None,
    "decided_at": None,
    "decision_note": "",
    "allocation_id": None,
}
APPROVED_EXAMPLE = {
    **REQUEST_EXAMPLE,
    "status": "approved",
    "decided_by": "eng-manager",
    "decided_at": "2026-12-01T10:02:00Z",
    "decision_note": "Go ahead.",
    "allocation_id": 41,
}

CREDIT_REQUEST_LIST_SCHEMA = extend_schema(
    operation_id="org_billing_credit_requests_list",
    summary="Credit requests (org admins: all; managers: their departments' and their own; members: theirs)",
    tags=TAGS,
    parameters=[ORG_ID_PARAM, STATUS_PARAM],
    responses={200: CreditRequestSerializer(many=True), **error_responses(400, 401, 404, 429)},
    examples=[
        example("one page", {"count": 1, "next": None, "previous": None, "results": [REQUEST_EXAMPLE]})
    ],
)

CREDIT_REQUEST_CREATE_SCHEMA = extend_schema(
    operation_id="org_billing_credit_request_create",
    summary="Ask the organization for more credits (any active member)",
    description=(
        "One pending request per member and organization (409 `credit_request_already_open`). The "
        "organization's admins and the manager of the member's department are told by e-mail. "
        "Accepts an `Idempotency-Key` header."
    ),
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    request=CreditRequestInput,
    responses={201: CreditRequestSerializer, **error_responses(400, 401, 403, 404, 409, 429)},
    examples=[
        example("ask", {"credits": 250.0, "reason": "Evaluation run for the new support bot"}, request=True),
        example("asked", REQUEST_EXAMPLE, status=201),
    ],
)

CREDIT_REQUEST_APPROVE_SCHEMA = extend_schema(
    operation_id="org_billing_credit_request_approve",
    summary="Approve a credit request: the requester's allocation grows by the credits",
    description=(
        "Org admins approve any request, a department manager those of their department's members, "
        "within its budget (409 `allocation_exceeds_department_budget`); nobody their own (403 "
        "`own_credit_request`). A request no longer pending is 409 `request_not_pending`. The "
        "requester is told by e-mail."
    ),
    tags=TAGS,
    parameters=[ORG_ID_PARAM, REQUEST_ID_PARAM],
    request=CreditRequestDecisionInput,
    responses={200: CreditRequestSerializer, **error_responses(400, 401, 402, 403, 404, 409, 429)},
    examples=[example("approved", APPROVED_EXAMPLE)],
)

CREDIT_REQUEST_DECLINE_SCHEMA = extend_schema(
    operation_id="org_billing_credit_request_decline",
    summary="Decline a credit request (with an optional note for the requester)",
    tags=TAGS,
    parameters=[ORG_ID_PARAM, REQUEST_ID_PARAM],
    request=CreditRequestDecisionInput,
    responses={200: CreditRequestSerializer, **error_responses(400, 401, 403, 404, 409, 429)},
    examples=[
        example("decline", {"note": "Not this month."}, request=True),
        example("declined", {**REQUEST_EXAMPLE, "status": "declined", "decision_note": "Not this month."}),
    ],
)

CREDIT_REQUEST_CANCEL_SCHEMA = extend_schema(
    operation_id="org_billing_credit_request_cancel",
    summary="Withdraw one's own pending credit request",
    tags=TAGS,
    parameters=[ORG_ID_PARAM, REQUEST_ID_PARAM],
    request=None,
    responses={200: CreditRequestSerializer, **error_responses(401, 403, 404, 409, 429)},
    examples=[example("cancelled", {**REQUEST_EXAMPLE, "status": "cancelled"})],
)
