"""OpenAPI helpers: the error shape and per-status error responses for ``extend_schema``."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

_DESCRIPTIONS = {
    400: "Invalid input (`validation_error`, `invalid_amount`, `malformed_request`, …)",
    401: "Not signed in (`unauthenticated`)",
    402: "Not enough credits (`insufficient_credits`, `no_active_allocation`, `payment_required`, …)",
    403: "Signed in but not allowed (`forbidden`)",
    404: "Unknown, or not visible to the caller (`organization_not_found`, `not_found`, …)",
    406: "The `Accept` header asks for a type the API cannot send (`not_acceptable`)",
    409: "Conflicts with the current state (`duplicate_subscription`, `idempotency_key_reused`, …)",
    410: "Gone for good (`invitation_expired`)",
    429: "Rate limited (`rate_limited`); see `Retry-After`",
    503: "A backing service is down (`billing_backend_unavailable`, `service_unavailable`)",
}


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code")
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse}`` for the error statuses an endpoint can answer."""
    return {
        status: OpenApiResponse(
            ErrorSerializer,
            description=_DESCRIPTIONS.get(status, "Error"),
            examples=[
                OpenApiExample(
                    f"error {status}",
                    value={"error": {"code": "…", "message": "…", "details": {}}},
                    response_only=True,
                    status_codes=[str(status)],
                )
            ],
        )
        for status in statuses
    }


def example(name: str, value: Any, *, request: bool = False, status: int = 200) -> OpenApiExample:
    if request:
        return OpenApiExample(name, value=value, request_only=True)
    return OpenApiExample(name, value=value, response_only=True, status_codes=[str(status)])


def forbid_unknown_request_fields(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Post-processing hook: request bodies refuse unknown fields (``StrictSerializer``), so
    the schema says ``additionalProperties: false`` for every request component."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result


def document_input_guard(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Post-processing hook: every operation may answer 400 (NUL or an unpaired surrogate in a
    query parameter, header or body), 406 (an ``Accept`` header that asks for a type the API
    cannot send: DRF's content negotiation) and, with a body, 413 (``orgbilling/input_guard.py``)."""
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.setdefault("400", {"description": _DESCRIPTIONS[400], "content": error_content})
            responses.setdefault("406", {"description": _DESCRIPTIONS[406], "content": error_content})
            if method in ("post", "put", "patch"):
                responses.setdefault(
                    "413",
                    {"description": "The body is too large (`request_too_large`)", "content": error_content},
                )
    return result
