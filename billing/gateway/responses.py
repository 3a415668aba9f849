"""HTTP answers of the gateway: errors in the one shape, and the cost headers."""

import json
from typing import Any

from django.http import HttpResponse
from rest_framework.exceptions import APIException
from rest_framework.utils.encoders import JSONEncoder

from billing.errors import UpstreamRejected
from billing.money import millicredits_to_credits
from orgbilling.api.exceptions import api_exception_handler, error_body, retry_headers
from orgbilling.errors import ApplicationError

JSON = "application/json"
# "pending": the call's cost is known but not yet charged (the database refused the settlement;
# billing.gateway.settlement charges it once the database is back).
SETTLEMENT_HEADER = "X-Settlement"


def json_response(payload: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    # DRF's encoder: Decimal credits become JSON numbers exactly as in the REST API.
    return HttpResponse(
        json.dumps(payload, cls=JSONEncoder), status=status, content_type=JSON, headers=headers
    )


def error_response(
    error: ApplicationError | APIException, headers: dict[str, str] | None = None
) -> HttpResponse:
    """Render a refusal exactly as the REST API would (DRF errors go through its handler)."""
    extra = dict(headers or {})
    if isinstance(error, ApplicationError):
        extra.update(retry_headers(error))
        return json_response(error.as_dict(), status=http_status(error), headers=extra)
    rendered = api_exception_handler(error, {})
    if rendered is None:  # pragma: no cover - every APIException is rendered
        return json_response(error_body("internal_error", "Something went wrong on our side."), status=500)
    for name in ("Retry-After", "WWW-Authenticate"):
        if name in rendered.headers:
            extra[name] = rendered.headers[name]
    return json_response(rendered.data, status=rendered.status_code, headers=extra)


def method_not_allowed(allowed: str) -> HttpResponse:
    return json_response(
        error_body("method_not_allowed", f"Use {allowed}."), status=405, headers={"Allow": allowed}
    )


def credits_text(millicredits: int) -> str:
    """Millicredits as credits with exactly three decimals ("1.250")."""
    return f"{millicredits_to_credits(millicredits):.3f}"


def cost_headers(*, request_id: str, org_id: str | None, charged: int, remaining: int) -> dict[str, str]:
    return {
        "X-Request-Id": request_id,
        "X-Org-Id": org_id or "",
        "X-Cost-Incurred": credits_text(charged),
        "X-Credits-Remaining": credits_text(remaining),
    }


def http_status(error: ApplicationError) -> int:
    """The status a refusal answers with: the upstream's own for a call it rejected."""
    return error.upstream_status if isinstance(error, UpstreamRejected) else error.status_code
