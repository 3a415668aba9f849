"""Keycloak (OIDC): the provider's signing keys, verification of the JWTs it signs, userinfo
look-ups, the browser sign-in backend (mozilla-django-oidc), the password backend that steps
aside for SSO, and the end-session URL.

Every provider-signed JWT (the ID token at sign-in, access tokens sent as bearer tokens) is
verified here, locally: RS256 only, against the provider's JWKS (cached; refetched on an
unknown ``kid`` at most once per ``OIDC_JWKS_MIN_REFRESH_SECONDS``), with ``iss``, ``aud``,
``exp`` and ``nbf`` checked with ``OIDC_TOKEN_LEEWAY_SECONDS`` of leeway.
"""

import hashlib
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView
from rest_framework.request import Request

from organizations.models import User
from organizations.permissions import acts_as_system_admin
from organizations.services import InvalidClaims, sync_user_from_claims
from orgbilling.cache import optional_get, optional_set

logger = logging.getLogger(__name__)


class ProviderTokenError(Exception):
    """A token the provider did not sign, or not for us, or no longer valid. The message is
    safe to show to the caller."""


# Signing keys ---------------------------------------------------------------------------------


def _fetch_jwks(url: str) -> list[jwt.PyJWK]:
    """The provider's RSA signing keys (``use`` = ``sig`` or absent); other keys are ignored."""
    response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
    response.raise_for_status()
    keys: list[jwt.PyJWK] = []
    for entry in response.json().get("keys", []):
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", settings.OIDC_RP_SIGN_ALGO) != settings.OIDC_RP_SIGN_ALGO:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=settings.OIDC_RP_SIGN_ALGO)
        except jwt.PyJWKError:
            continue
        if isinstance(key.key, RSAPublicKey):
            keys.append(key)
    return keys


class ProviderKeys:
    """The JWKS of ``OIDC_OP_JWKS_ENDPOINT``, cached per process. One lock: concurrent requests
    that need a refetch wait for a single fetch instead of each calling the provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear("")

    def reset(self) -> None:
        """Forget the keys (tests; a deployment never needs to)."""
        with self._lock:
            self._clear("")

    def _clear(self, url: str) -> None:
        self._url = url
        self._keys: list[jwt.PyJWK] = []
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf

    def current(self) -> list[jwt.PyJWK]:
        with self._lock:
            self._follow_settings()
            now = time.monotonic()
            if now - self._fetched_at >= settings.OIDC_JWKS_CACHE_SECONDS and self._may_fetch(now):
                self._fetch(now)
            return list(self._keys)

    def refresh(self) -> bool:
        """Refetch now unless the last attempt was too recent; True when fresh keys arrived."""
        with self._lock:
            self._follow_settings()
            now = time.monotonic()
            return self._may_fetch(now) and self._fetch(now)

    def _follow_settings(self) -> None:
        if self._url != settings.OIDC_OP_JWKS_ENDPOINT:
            self._clear(settings.OIDC_OP_JWKS_ENDPOINT)

    def _may_fetch(self, now: float) -> bool:
        return now - self._attempted_at >= settings.OIDC_JWKS_MIN_REFRESH_SECONDS

    def _fetch(self, now: float) -> bool:
        self._attempted_at = now
        try:
            keys = _fetch_jwks(self._url)
        except (requests.RequestException, ValueError, AttributeError) as error:
            # Keep the keys we had: they are still the provider's.
            logger.warning("could not fetch the provider's signing keys from %s: %s", self._url, error)
            return False
        self._keys, self._fetched_at = keys, now
        return True


provider_keys = ProviderKeys()

_CLAIM_ERRORS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet."),
    (jwt.InvalidIssuerError, "The token was issued by another provider."),
    (jwt.InvalidAudienceError, "The token was not issued for this API."),
    (jwt.MissingRequiredClaimError, "The token lacks a required claim."),
]


def _decode(token: str, key: jwt.PyJWK, audience: str) -> dict[str, Any] | None:
    """The verified claims, None when ``key`` did not make this signature."""
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=[settings.OIDC_RP_SIGN_ALGO],
            audience=audience,
            issuer=settings.OIDC_ISSUER,
            leeway=settings.OIDC_TOKEN_LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.InvalidSignatureError:
        return None
    except jwt.PyJWTError as error:
        message = next(
            (text for cls, text in _CLAIM_ERRORS if isinstance(error, cls)), "The token is not valid."
        )
        raise ProviderTokenError(message) from error


def verify_provider_jwt(token: str, *, audience: str) -> dict[str, Any]:
    """The claims of a JWT the provider signed for ``audience``; ProviderTokenError otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise ProviderTokenError("The token is malformed.") from error
    if header.get("alg") != settings.OIDC_RP_SIGN_ALGO:
        raise ProviderTokenError("The token's signing algorithm is not accepted.")
    kid = header.get("kid")
    if kid is None and settings.OIDC_VERIFY_KID:
        raise ProviderTokenError("The token names no signing key.")
    if not audience or not settings.OIDC_ISSUER:
        raise ProviderTokenError("Token verification is not configured.")

    def candidates(keys: list[jwt.PyJWK]) -> list[jwt.PyJWK]:
        return keys if kid is None else [key for key in keys if key.key_id == kid]

    keys = candidates(provider_keys.current())
    claims = _first_verified(token, keys, audience)
    # An unknown kid (or, without a kid, no key that fits) may mean the provider rotated its keys.
    if claims is None and (kid is None or not keys) and provider_keys.refresh():
        keys = candidates(provider_keys.current())
        claims = _first_verified(token, keys, audience)
    if claims is None:
        raise ProviderTokenError(
            "The token's signature is not valid." if keys else "The token was signed with an unknown key."
        )
    return claims


def _first_verified(token: str, keys: list[jwt.PyJWK], audience: str) -> dict[str, Any] | None:
    for key in keys:
        claims = _decode(token, key, audience)
        if claims is not None:
            return claims
    return None


# Opaque access tokens ---------------------------------------------------------------------------


def userinfo_claims(access_token: str) -> dict[str, Any]:
    """The claims the provider's userinfo endpoint returns for an opaque access token. Any answer
    but 200 with a JSON object naming a ``sub`` is a refusal. Good answers are cached for
    ``OIDC_USERINFO_CACHE_SECONDS`` under a hash of the token (never the token itself)."""
    endpoint = settings.OIDC_OP_USER_ENDPOINT
    digest = hashlib.sha256(f"{endpoint}\n{access_token}".encode()).hexdigest()
    cache_key = f"oidc:userinfo:{digest}"
    cached = optional_get(cache_key, consumer="oidc userinfo")  # unavailable: ask the provider
    if isinstance(cached, dict):
        return cached
    try:
        response = requests.get(
            endpoint,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=settings.OIDC_TIMEOUT,
            verify=settings.OIDC_VERIFY_SSL,
        )
    except requests.RequestException as error:
        logger.warning("userinfo request to %s failed: %s", endpoint, error)
        raise ProviderTokenError("The identity provider could not confirm the token.") from error
    if response.status_code != 200:
        raise ProviderTokenError("The token is not valid.")
    try:
        claims = response.json()
    except ValueError as error:
        raise ProviderTokenError("The identity provider's answer was not understood.") from error
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
        raise ProviderTokenError("The identity provider's answer names no user.")
    if settings.OIDC_USERINFO_CACHE_SECONDS > 0:
        optional_set(cache_key, claims, settings.OIDC_USERINFO_CACHE_SECONDS, consumer="oidc userinfo")
    return claims


# Browser sign-in ------------------------------------------------------------------------------


def client_ip(request: HttpRequest | Request | None) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


# Session keys of an SSO session (re-checked by organizations/auth/sessions.py): the refresh
# token issued at sign-in, and when the provider last confirmed the session (epoch seconds).
REFRESH_TOKEN_SESSION_KEY = "oidc_refresh_token"
CHECKED_AT_SESSION_KEY = "oidc_checked_at"


class KeycloakOIDCBackend(OIDCAuthenticationBackend):
    """Authorization-code sign-in. The ID token is verified by ``verify_provider_jwt`` (issuer,
    audience = our client id, nonce); the user is ``sub``, created and updated from the ID
    token's and the userinfo endpoint's claims by ``organizations.services.identity``. The refresh token
    is kept in the session for the periodic re-check (organizations/auth/sessions.py). Inert
    (None) while OIDC is not configured."""

    token_response: dict[str, Any]

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        if not settings.OIDC_ENABLED or request is None:
            return None
        try:
            user: User | None = super().authenticate(request, **kwargs)
        except (SuspiciousOperation, requests.RequestException, ProviderTokenError, InvalidClaims) as error:
            logger.warning("OIDC sign-in refused: %s", error)
            return None
        return user

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.token_response = super().get_token(payload)
        return self.token_response

    def store_tokens(self, access_token: str, id_token: str) -> None:
        super().store_tokens(access_token, id_token)
        session = self.request.session
        refresh_token = self.token_response.get("refresh_token")
        if isinstance(refresh_token, str) and refresh_token:
            session[REFRESH_TOKEN_SESSION_KEY] = refresh_token
        else:
            session.pop(REFRESH_TOKEN_SESSION_KEY, None)  # the re-check will end the session
        session[CHECKED_AT_SESSION_KEY] = time.time()

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(token, str):
            raise SuspiciousOperation("The provider returned no ID token.")
        try:
            claims = verify_provider_jwt(token, audience=settings.OIDC_RP_CLIENT_ID)
        except ProviderTokenError as error:
            raise SuspiciousOperation(f"ID token refused: {error}") from error
        if settings.OIDC_USE_NONCE and claims.get("nonce") != kwargs.get("nonce"):
            raise SuspiciousOperation("ID token nonce mismatch.")
        return claims

    def get_or_create_user(self, access_token: str, id_token: str, payload: Mapping[str, Any]) -> User:
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo answer is about another subject.")
        return sync_user_from_claims(
            claims={**payload, **userinfo}, via="oidc", ip_address=client_ip(self.request), sign_in=True
        )

    def get_user(self, user_id: Any) -> User | None:
        # ModelBackend's: a user deactivated since signing in loses the session.
        return ModelBackend.get_user(self, user_id)  # type: ignore[return-value]


class LocalPasswordBackend(ModelBackend):
    """Django's username/password sign-in; while OIDC is configured, for staff only (the
    operations fallback when Keycloak is down). Everyone else signs in through Keycloak."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and settings.OIDC_ENABLED and not acts_as_system_admin(user):
            logger.info("password sign-in refused for %s: single sign-on is required", user.username)
            return None
        return user


class KeycloakAuthenticationRequestView(OIDCAuthenticationRequestView):
    """``/oidc/authenticate/``: 404 while OIDC is not configured."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404
        response: HttpResponse = super().get(request)
        return response


class KeycloakAuthenticationCallbackView(OIDCAuthenticationCallbackView):
    """``/oidc/callback/``: 404 while OIDC is not configured."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404
        response: HttpResponse = super().get(request)
        return response


def provider_logout_url(request: HttpRequest) -> str:
    """Where ``/oidc/logout/`` sends the browser: the provider's end-session endpoint with the
    ID token as ``id_token_hint`` and our ``LOGOUT_REDIRECT_URL`` to come back to; straight
    there when the session holds no ID token (a password sign-in)."""
    back = request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL))
    id_token = request.session.get("oidc_id_token")
    endpoint = settings.OIDC_OP_LOGOUT_ENDPOINT
    if not (settings.OIDC_ENABLED and endpoint and id_token):
        return back
    query = urlencode(
        {"id_token_hint": id_token, "post_logout_redirect_uri": back, "client_id": settings.OIDC_RP_CLIENT_ID}
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
