"""Browser-session policy: SSO sessions re-checked against Keycloak, staff sessions capped.

An SSO session keeps the refresh token Keycloak issued at sign-in (server-side, in the session
store). Every ``OIDC_SESSION_RECHECK_SECONDS`` a request on that session redeems it at the token
endpoint and re-syncs the user from the fresh claims (``organizations.services.identity``), so a removed
admin role is gone within the interval. A refused refresh (user disabled, session revoked) ends
the session at that request; the request then goes on signed out (the API answers 401 in the
error shape, the admin redirects to its login). Keycloak unreachable: the session keeps working
for ``OIDC_SESSION_RECHECK_GRACE_SECONDS`` more, then ends (fail closed).

Password sessions (the staff fallback) have no provider to ask: ``ModelBackend.get_user``
already refuses a deactivated user per request, and the staff cap below bounds them. API keys
and bearer tokens carry no session and are checked on every request by their own classes.

A staff user's session ends ``STAFF_SESSION_MAX_SECONDS`` after sign-in however active it is:
Django's session expiry slides with activity, so the sign-in time is kept in the session and
compared here.
"""

import logging
import time
from typing import Any

import requests
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY, logout
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from organizations.auth.oidc import (
    CHECKED_AT_SESSION_KEY as CHECKED_AT,
)
from organizations.auth.oidc import (
    REFRESH_TOKEN_SESSION_KEY as REFRESH_TOKEN,
)
from organizations.auth.oidc import (
    ProviderTokenError,
    client_ip,
    verify_provider_jwt,
)
from organizations.models import User
from organizations.permissions import acts_as_system_admin
from organizations.services import InvalidClaims, sync_user_from_claims
from orgbilling.audit import record_audit_event
from orgbilling.middleware import DualModeMiddleware

logger = logging.getLogger(__name__)

OIDC_BACKEND = "organizations.auth.oidc.KeycloakOIDCBackend"
# Session keys (and REFRESH_TOKEN, CHECKED_AT, set at sign-in by the OIDC backend).
SIGNED_IN_AT = "auth_signed_in_at"
ATTEMPTED_AT = "oidc_recheck_attempted_at"  # the last attempt that found the provider unreachable


class ProviderRefused(Exception):
    """The provider no longer accepts the session (or answered something we cannot trust)."""


class ProviderUnavailable(Exception):
    """The provider could not be reached or failed (timeout, 5xx)."""


# At sign-in -------------------------------------------------------------------------------------


def stamp_session(*, request: HttpRequest, user: User, **_: Any) -> None:
    """``user_logged_in`` receiver: the sign-in time; a staff session's cookie lasts no longer
    than the cap (the cap itself is enforced by the middleware)."""
    request.session[SIGNED_IN_AT] = time.time()
    if acts_as_system_admin(user):
        request.session.set_expiry(settings.STAFF_SESSION_MAX_SECONDS)


def connect_signals() -> None:
    """Called once by the app's ``ready()``."""
    user_logged_in.connect(stamp_session, dispatch_uid="orgbilling-stamp-session")


# The provider -----------------------------------------------------------------------------------


def _provider_call(method: str, url: str, **kwargs: Any) -> requests.Response:
    try:
        response = requests.request(
            method, url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL, **kwargs
        )
    except requests.RequestException as error:
        raise ProviderUnavailable(f"{url}: {error}") from error
    if response.status_code >= 500 or response.status_code == 429:
        raise ProviderUnavailable(f"{url} answered {response.status_code}")
    if response.status_code != 200:
        raise ProviderRefused(f"{url} answered {response.status_code}: {response.text[:200]}")
    try:
        response.json()
    except ValueError as error:
        raise ProviderUnavailable(f"{url} answered something that is not JSON") from error
    return response


def refresh_claims(refresh_token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Redeem ``refresh_token``: (the token endpoint's answer, the user's current claims: the new
    ID token's, when one is returned, under the userinfo endpoint's)."""
    tokens = _provider_call(
        "POST",
        settings.OIDC_OP_TOKEN_ENDPOINT,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        # HTTP Basic: the client authentication every OAuth 2 server must accept (RFC 6749 §2.3.1).
        auth=(settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET),
    ).json()
    access_token = tokens.get("access_token") if isinstance(tokens, dict) else None
    if not isinstance(access_token, str) or not access_token:
        raise ProviderRefused("The refresh answer holds no access token.")
    id_claims: dict[str, Any] = {}
    if isinstance(tokens.get("id_token"), str):
        try:
            id_claims = verify_provider_jwt(tokens["id_token"], audience=settings.OIDC_RP_CLIENT_ID)
        except ProviderTokenError as error:
            raise ProviderRefused(f"The refreshed ID token was refused: {error}") from error
    userinfo = _provider_call(
        "GET", settings.OIDC_OP_USER_ENDPOINT, headers={"Authorization": f"Bearer {access_token}"}
    ).json()
    if not isinstance(userinfo, dict) or (id_claims and userinfo.get("sub") != id_claims.get("sub")):
        raise ProviderRefused("The userinfo answer does not match the ID token.")
    return tokens, {**id_claims, **userinfo}


# The middleware ---------------------------------------------------------------------------------


def _end_session(request: HttpRequest, user: User, reason: str) -> None:
    record_audit_event(
        action="auth.session_ended",
        actor_label="session-policy",
        target_type="user",
        target_id=user.username,
        metadata={"reason": reason},
        ip_address=client_ip(request),
    )
    logger.info("session of %s ended: %s", user.username, reason)
    logout(request)


def _recheck(request: HttpRequest, user: User, now: float) -> User | None:
    """The user as the provider now describes them, or None when the session must end."""
    session = request.session
    checked_at = float(session.get(CHECKED_AT, 0))
    interval = settings.OIDC_SESSION_RECHECK_SECONDS
    if now - checked_at < interval:
        return user
    attempted_at = float(session.get(ATTEMPTED_AT, 0))
    within_grace = now - checked_at < interval + settings.OIDC_SESSION_RECHECK_GRACE_SECONDS
    if within_grace and now - attempted_at < settings.OIDC_SESSION_RECHECK_RETRY_SECONDS:
        return user
    refresh_token = session.get(REFRESH_TOKEN)
    if not isinstance(refresh_token, str):
        _end_session(request, user, "no_refresh_token")
        return None
    try:
        tokens, claims = refresh_claims(refresh_token)
        if claims.get("sub") != user.username:
            raise ProviderRefused("The refreshed claims name another user.")
        fresh = sync_user_from_claims(claims=claims, via="oidc-refresh", ip_address=client_ip(request))
    except ProviderUnavailable as error:
        if within_grace:
            logger.warning("session re-check of %s postponed: %s", user.username, error)
            session[ATTEMPTED_AT] = now
            return user
        _end_session(request, user, "provider_unreachable")
        return None
    except (ProviderRefused, InvalidClaims) as error:
        logger.info("session re-check of %s refused: %s", user.username, error)
        _end_session(request, user, "provider_refused")
        return None
    if not fresh.is_active:
        _end_session(request, fresh, "user_inactive")
        return None
    new_refresh_token = tokens.get("refresh_token")
    if isinstance(new_refresh_token, str) and new_refresh_token:
        session[REFRESH_TOKEN] = new_refresh_token  # Keycloak rotates them
    if isinstance(tokens.get("id_token"), str):
        session["oidc_id_token"] = tokens["id_token"]  # the logout's id_token_hint
    session[CHECKED_AT] = now
    session.pop(ATTEMPTED_AT, None)
    return fresh


def apply_session_policy(request: HttpRequest) -> None:
    """Re-check an SSO session when due, then end a staff session past its cap. Sync: it reads
    the session store and the user, and may call Keycloak."""
    if SESSION_KEY not in request.session:
        return
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        return
    now = time.time()
    session = request.session
    if (
        settings.OIDC_ENABLED
        and settings.OIDC_SESSION_RECHECK_SECONDS > 0
        and session.get(BACKEND_SESSION_KEY) == OIDC_BACKEND
    ):
        fresh = _recheck(request, user, now)
        if fresh is None:
            return
        request.user = user = fresh
    signed_in_at = session.setdefault(SIGNED_IN_AT, now)  # a session older than this policy
    if acts_as_system_admin(user) and now - float(signed_in_at) >= settings.STAFF_SESSION_MAX_SECONDS:
        _end_session(request, user, "staff_session_expired")


class SessionPolicyMiddleware(DualModeMiddleware):
    """After ``AuthenticationMiddleware``. Runs in the mode it is called in (ASGI: on the event
    loop), so requests without a session cookie (API keys, bearer tokens, the gateway) pass
    without a thread hop or a look at the session store; the others apply the policy on a
    thread under ASGI."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            apply_session_policy(request)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            await sync_to_async(apply_session_policy, thread_sensitive=True)(request)
        response: HttpResponseBase = await self.get_response(request)
        return response
