"""A member's allocation: listing, adjusting, revoking, and transferring credits between members:
serializers, then the endpoints' OpenAPI schemas."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from billing.api.serializers import examples
from billing.api.serializers.credits import AllocationChangeSerializer, AllocationSerializer
from billing.api.serializers.fields import (
    ORG_ID_PARAM,
    USER_ID_PARAM,
    Credits,
    CreditsIn,
    CreditsOrZeroIn,
    user_id_field,
)
from billing.api.serializers.periods import PeriodSettingsInput
from orgbilling.api.fields import StrictSerializer
from orgbilling.api.schema import error_responses, example

# --- input ---------------------------------------------------------------------------------


class AllocationAdjustInput(PeriodSettingsInput, StrictSerializer):
    """The member's new allocated total (and, optionally, its daily cap and period settings)."""

    # This PATCH is never partial: ``credits`` is required. ``partial`` is pinned to False so
    # neither DRF nor the OpenAPI schema (which marks PATCH bodies partial) makes it optional.
    credits = CreditsOrZeroIn(help_text="The member's new allocated total (not a delta).")
    daily_cap_credits = CreditsOrZeroIn(
        required=False,
        allow_null=True,
        help_text="Credits per UTC day (402 `daily_cap_reached` beyond); null removes it; omit to keep it.",
    )

    @property
    def partial(self) -> bool:
        return False

    @partial.setter
    def partial(self, value: bool) -> None:
        pass


class TransferInput(StrictSerializer):
    from_user_id = user_id_field()
    to_user_id = user_id_field()
    credits = CreditsIn()


# --- output --------------------------------------------------------------------------------


class AllocationRevokedSerializer(AllocationChangeSerializer):
    revoked = serializers.BooleanField()
    returned_to_pool = Credits(help_text="Unused credits returned to the pool")


class TransferSerializer(serializers.Serializer):
    from_allocation = AllocationSerializer()
    to_allocation = AllocationSerializer()
    credits = Credits()


# --- OpenAPI -------------------------------------------------------------------------------

TAGS = ["allocations"]

ALLOCATION_LIST_SCHEMA = extend_schema(
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

ALLOCATION_ADJUST_SCHEMA = extend_schema(
    operation_id="org_billing_allocation_adjust",
    summary=(
        "Set a member's allocated total (org admins, or the manager of its department); never "
        "below what is used or held"
    ),
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

ALLOCATION_REVOKE_SCHEMA = extend_schema(
    operation_id="org_billing_allocation_revoke",
    summary=(
        "Revoke a member's allocation (org admins, or the manager of its department); its unused "
        "credits return to the pool, or to the department's budget"
    ),
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

CREDITS_TRANSFER_SCHEMA = extend_schema(
    operation_id="org_billing_credits_transfer",
    summary=(
        "Move free credits from one member's allocation to another's in the same department "
        "(org admins, or its manager)"
    ),
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
