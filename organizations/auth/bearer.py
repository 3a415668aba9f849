"""Keycloak access tokens in ``Authorization: Bearer …`` for the API.

A JWT is verified locally (``organizations.auth.oidc.verify_provider_jwt``: RS256 against the
provider's JWKS with key rotation, ``iss`` = ``OIDC_ISSUER``, ``aud`` containing
``OIDC_AUDIENCE``, ``exp``/``nbf`` with leeway); an opaque token is checked at the provider's
userinfo endpoint. Either way the claims map to the same ``User`` as the browser sign-in
(``organizations.services.identity``). ``obk_`` tokens are API keys: left to ``ApiKeyAuthentication``.
Every refusal is a 401 in the error shape; bearer callers carry no cookie, so no CSRF check.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from organizations.auth.oidc import ProviderTokenError, client_ip, userinfo_claims, verify_provider_jwt
from organizations.models import User
from organizations.services import KEY_PREFIX as API_KEY_PREFIX
from organizations.services import InvalidClaims, sync_user_from_claims

MAX_TOKEN_LENGTH = 16 * 1024
# Payload `typ` values of tokens that are not access tokens (Keycloak: "ID", "Refresh", "Logout").
_ACCESS_TOKEN_TYPES = {"bearer", "at+jwt", "application/at+jwt"}


@dataclass(frozen=True)
class AccessTokenInfo:
    """``request.auth`` for a bearer-token caller: the verified claims, never the token."""

    kind: str  # "jwt" or "opaque"
    claims: dict[str, Any]


def _presented_token(request: Request) -> str | None:
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise AuthenticationFailed("Give exactly one token after `Bearer`.")
    try:
        token = parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed("The bearer token is malformed.") from None
    if len(token) > MAX_TOKEN_LENGTH:
        raise AuthenticationFailed("The bearer token is too long.")
    return token


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


def access_token_claims(token: str) -> AccessTokenInfo:
    """Verified claims of an access token; ProviderTokenError when it is not one we accept."""
    if not _is_jwt(token):
        return AccessTokenInfo(kind="opaque", claims=userinfo_claims(token))
    claims = verify_provider_jwt(token, audience=settings.OIDC_AUDIENCE)
    token_type = claims.get("typ")
    # An ID token (for our client, so with our audience) must not open the API: it travels in
    # logout URLs and browser history. ID tokens carry `at_hash`; Keycloak's also say typ=ID.
    if (isinstance(token_type, str) and token_type.lower() not in _ACCESS_TOKEN_TYPES) or "at_hash" in claims:
        raise ProviderTokenError("This is not an access token.")
    return AccessTokenInfo(kind="jwt", claims=claims)


class BearerTokenAuthentication(BaseAuthentication):
    www_authenticate_realm = "orgbilling"

    def authenticate(self, request: Request) -> tuple[User, AccessTokenInfo] | None:
        token = _presented_token(request)
        if token is None or token.startswith(API_KEY_PREFIX) or not settings.OIDC_ENABLED:
            return None
        try:
            info = access_token_claims(token)
            user = sync_user_from_claims(
                claims=info.claims, via="bearer_token", ip_address=client_ip(request)
            )
        except ProviderTokenError as error:
            raise AuthenticationFailed(str(error)) from None
        except InvalidClaims as error:
            raise AuthenticationFailed(str(error)) from None
        if not user.is_active:
            raise AuthenticationFailed("This user is deactivated.")
        return user, info

    def authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


class BearerTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents Keycloak access tokens in the OpenAPI schema (``keycloakBearer``)."""

    target_class = BearerTokenAuthentication
    name = "keycloakBearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Keycloak access token for this API (`aud` names the API's client id), "
            "as `Authorization: Bearer <token>`.",
        }
