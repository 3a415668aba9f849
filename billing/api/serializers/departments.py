"""Departments of an organization (org → department → member), each with a budget carved from
the pool and its managers: serializers, then the endpoints' OpenAPI schemas."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers

from billing.api.serializers.fields import ORG_ID_PARAM, Credits, CreditsOrZeroIn, user_id_field
from orgbilling.api.fields import StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example

MAX_MANAGERS = 50

# --- input ---------------------------------------------------------------------------------


@extend_schema_field({"type": "integer", "minimum": 1})
class DepartmentIdField(serializers.IntegerField):
    """A department id: a JSON whole number (strings, booleans and fractions are refused)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=2**63 - 1, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


def _managers_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=user_id_field(),
        max_length=MAX_MANAGERS,
        help_text="User ids of the managers: active members of the organization.",
        **kwargs,
    )


class DepartmentCreateInput(StrictSerializer):
    name = StrictCharField(max_length=100)
    budget_credits = CreditsOrZeroIn(help_text="Credits carved from the pool's unallocated credits.")
    managers = _managers_field(required=False, default=list)


class DepartmentUpdateInput(StrictSerializer):
    """Any of the fields; ``budget_credits`` is the new budget (not a delta)."""

    name = StrictCharField(max_length=100, required=False)
    budget_credits = CreditsOrZeroIn(
        required=False, help_text="The new budget; never below what the department's allocations hold."
    )
    managers = _managers_field(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError({"non_field_errors": ["Give at least one field to change."]})
        return attrs


# --- output --------------------------------------------------------------------------------


class DepartmentSerializer(serializers.Serializer):
    department_id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    budget_credits = Credits(help_text="Carved from the pool")
    allocated_credits = Credits(
        help_text="Held by the department's allocations (a revoked one: what it used)"
    )
    used_credits = Credits(source="used", help_text="Consumed by the department's allocations")
    managers = serializers.SerializerMethodField(help_text="User ids of the managers")

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_managers(self, department: Any) -> list[str]:
        return sorted(manager.username for manager in department.managers.all())


class DepartmentDeletedSerializer(serializers.Serializer):
    deleted = serializers.BooleanField()
    department_id = serializers.IntegerField()
    returned_to_pool = Credits(help_text="The unallocated budget handed back to the pool")


# --- OpenAPI -------------------------------------------------------------------------------

TAGS = ["departments"]

DEPARTMENT_ID_PARAM = OpenApiParameter(
    "department_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The department's id"
)

DEPARTMENT_EXAMPLE: dict[str, Any] = {
    "department_id": 3,
    "name": "Engineering",
    "budget_credits": 40000.0,
    "allocated_credits": 12000.0,
    "used_credits": 830.25,
    "managers": ["eng-manager"],
}

DEPARTMENT_LIST_SCHEMA = extend_schema(
    operation_id="org_billing_departments_list",
    summary="Departments of the organization (org admins: all; managers: theirs)",
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    responses={200: DepartmentSerializer(many=True), **error_responses(400, 401, 404, 429)},
    examples=[
        example("one page", {"count": 1, "next": None, "previous": None, "results": [DEPARTMENT_EXAMPLE]})
    ],
)

DEPARTMENT_CREATE_SCHEMA = extend_schema(
    operation_id="org_billing_department_create",
    summary="Create a department with a budget carved from the pool (org admins)",
    description="The pool's available credits drop by the budget. Accepts an `Idempotency-Key` header.",
    tags=TAGS,
    parameters=[ORG_ID_PARAM],
    request=DepartmentCreateInput,
    responses={201: DepartmentSerializer, **error_responses(400, 401, 402, 403, 404, 409, 429)},
    examples=[
        example(
            "create",
            {"name": "Engineering", "budget_credits": 40000.0, "managers": ["eng-manager"]},
            request=True,
        ),
        example("created", {**DEPARTMENT_EXAMPLE, "allocated_credits": 0.0, "used_credits": 0.0}, status=201),
    ],
)

DEPARTMENT_UPDATE_SCHEMA = extend_schema(
    operation_id="org_billing_department_update",
    summary="Rename, resize or re-staff a department (org admins)",
    description=(
        "A larger budget draws on the pool's available credits; a smaller one hands the difference "
        "back, never below what the department's allocations hold (409)."
    ),
    tags=TAGS,
    parameters=[ORG_ID_PARAM, DEPARTMENT_ID_PARAM],
    request=DepartmentUpdateInput,
    responses={200: DepartmentSerializer, **error_responses(400, 401, 402, 403, 404, 409, 429)},
    examples=[
        example("resize", {"budget_credits": 50000.0}, request=True),
        example("resized", {**DEPARTMENT_EXAMPLE, "budget_credits": 50000.0}),
    ],
)

DEPARTMENT_DELETE_SCHEMA = extend_schema(
    operation_id="org_billing_department_delete",
    summary="Delete a department without active allocations (org admins)",
    description="Its unallocated budget returns to the pool; with active allocations the answer is 409.",
    tags=TAGS,
    parameters=[ORG_ID_PARAM, DEPARTMENT_ID_PARAM],
    request=None,
    responses={200: DepartmentDeletedSerializer, **error_responses(401, 402, 403, 404, 409, 429)},
    examples=[example("deleted", {"deleted": True, "department_id": 3, "returned_to_pool": 28000.0})],
)
