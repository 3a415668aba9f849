"""The one exception handler: every API error leaves in the shape of DESIGN.md §6,
``{"error": {"code": ..., "message": ..., "details": {...}}}``, with a stable code."""

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import bad_request, page_not_found, server_error
from rest_framework import exceptions
from rest_framework.response import Response

from orgbilling.db import database_refusal
from orgbilling.errors import ApplicationError, DatabaseUnavailable

logger = logging.getLogger(__name__)

_DRF_CODES: list[tuple[type[exceptions.APIException], int, str]] = [
    (exceptions.ValidationError, 400, "validation_error"),
    (exceptions.ParseError, 400, "malformed_request"),
    (exceptions.NotAuthenticated, 401, "unauthenticated"),
    (exceptions.AuthenticationFailed, 401, "unauthenticated"),
    (exceptions.PermissionDenied, 403, "forbidden"),
    (exceptions.NotFound, 404, "not_found"),
    (exceptions.MethodNotAllowed, 405, "method_not_allowed"),
    (exceptions.NotAcceptable, 406, "not_acceptable"),
    (exceptions.UnsupportedMediaType, 415, "unsupported_media_type"),
    (exceptions.Throttled, 429, "rate_limited"),
]


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def retry_headers(error: ApplicationError) -> dict[str, str]:
    """``Retry-After`` for the errors that say when to come back (database refusals, quotas)."""
    retry_after = getattr(error, "retry_after", None)
    return {"Retry-After": str(retry_after)} if retry_after is not None else {}


def _log_database_refusal(refusal: DatabaseUnavailable, exc: BaseException) -> None:
    if refusal.code == "service_unavailable":
        logger.error("database unavailable: %s", exc, exc_info=exc)
    else:
        logger.warning("%s: %s", refusal.code, exc)


def _message(detail: Any) -> str:
    if isinstance(detail, list | tuple) and detail:
        return _message(detail[0])
    if isinstance(detail, dict):
        return "The input is not valid."
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    refusal = database_refusal(exc)
    if refusal is not None:
        _log_database_refusal(refusal, exc)
        return Response(refusal.as_dict(), status=refusal.status_code, headers=retry_headers(refusal))
    if isinstance(exc, ApplicationError):
        return Response(exc.as_dict(), status=exc.status_code, headers=retry_headers(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's 500 handler (JSON for /api/) takes it
    status_code, code = next(
        ((status_, code_) for cls, status_, code_ in _DRF_CODES if isinstance(exc, cls)),
        (exc.status_code, str(getattr(exc, "default_code", "error"))),
    )
    details: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        details = {"fields": exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        retry_after = max(1, int(wait + 0.999))
        headers["Retry-After"] = str(retry_after)
        details = {"retry_after_seconds": retry_after}
    message = _message(exc.detail)
    return Response(error_body(code, message, details), status=status_code, headers=headers)


def json_or_html_400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A request Django refused before any view (a Host not in ALLOWED_HOSTS, …)."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("bad_request", "The request was refused."), status=400)
    return bad_request(request, exception or SuspiciousOperation())


def json_or_html_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """JSON in the error shape under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return page_not_found(request, exception or Http404())


def json_or_html_500(request: HttpRequest) -> HttpResponse:
    """Django's last resort, called while the exception is handled: a database failure anywhere
    (middleware, the admin, a page) answers the API's 503 with ``Retry-After``, not a 500."""
    exc = sys.exc_info()[1]
    refusal = database_refusal(exc) if exc is not None else None
    if refusal is not None:
        _log_database_refusal(refusal, exc)  # type: ignore[arg-type]
        return JsonResponse(refusal.as_dict(), status=refusal.status_code, headers=retry_headers(refusal))
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("internal_error", "Something went wrong on our side."), status=500)
    return server_error(request)
