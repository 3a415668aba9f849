"""The password sign-in throttle (django-axes): the backend that refuses a locked-out username or
client address, the 429 answer, and the audit event of each lockout.

Axes counts every failed password ``authenticate()`` made for a web request (``/admin/login/``,
``/api-auth/login/``), per username and per address separately; the limits are in
``orgbilling/settings/sessions.py``. SSO sign-ins are left out (``AXES_WHITELIST_CALLABLE``):
Keycloak throttles its own logins, and a shared office address locked by someone's password
guesses must not lock everyone behind it out of SSO.
"""

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from orgbilling.api.exceptions import error_body
from orgbilling.audit import record_audit_event

AXES_LABEL = "axes"


class PasswordThrottleBackend(AxesStandaloneBackend):
    """Axes' check, first among the backends. A call without a request (a management command,
    the test client's ``login()``) is not a sign-in over the web and has no address to count:
    it is let through to the other backends instead of refused."""

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        super().authenticate(request, username=username, password=password, **kwargs)
        return None


def is_not_a_password_attempt(request: HttpRequest, credentials: dict[str, Any] | None) -> bool:
    """``AXES_WHITELIST_CALLABLE``: an ``authenticate()`` without a password (the SSO callback's)
    is neither counted nor refused."""
    return credentials is not None and credentials.get("password") is None


def _retry_after_seconds(request: HttpRequest) -> int:
    cool_off = get_cool_off(request)
    return max(1, int(cool_off.total_seconds())) if cool_off else 3600


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict[str, Any] | None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: 429 with ``Retry-After``; the error shape for a client that asks
    for JSON, the lockout page for a browser. The page does not say which limit was hit."""
    retry_after = _retry_after_seconds(request)
    headers = {"Retry-After": str(retry_after)}
    wants_json = request.headers.get("X-Requested-With") == "XMLHttpRequest" or "application/json" in (
        request.headers.get("Accept", "")
    )
    if wants_json:
        body = error_body(
            "too_many_sign_in_failures",
            "Too many failed sign-in attempts; try again later.",
            {"retry_after_seconds": retry_after},
        )
        return JsonResponse(body, status=settings.AXES_HTTP_RESPONSE_CODE, headers=headers)
    response = render(
        request,
        settings.AXES_LOCKOUT_TEMPLATE,
        {"retry_after_minutes": max(1, retry_after // 60)},
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
    response["Retry-After"] = headers["Retry-After"]
    return response


def record_lockout(
    *, request: HttpRequest | None, username: str | None, ip_address: str | None, **_: Any
) -> None:
    """Receiver of axes' ``user_locked_out``: one ``auth.locked_out`` audit event when a failure
    reaches the limit (axes' own tables keep every attempt). Axes sends the signal again for each
    attempt refused during the lockout (axes leaves ``axes_failures_since_start`` unset then);
    those are answered 429 and not audited one by one (an attacker would write a row per
    request)."""
    failures = getattr(request, "axes_failures_since_start", None)
    if request is None or failures is None:
        return
    record_audit_event(
        action="auth.locked_out",
        actor_label=AXES_LABEL,
        target_type="user" if username else "ip_address",
        target_id=username or ip_address or "",
        metadata={
            "username": username or "",
            "path": request.path,
            "failures": failures,
            "cool_off_seconds": _retry_after_seconds(request),
        },
        ip_address=ip_address,
    )


def connect_signals() -> None:
    """Called once by the app's ``ready()``."""
    from axes.signals import user_locked_out

    user_locked_out.connect(record_lockout, dispatch_uid="orgbilling-audit-lockout")
