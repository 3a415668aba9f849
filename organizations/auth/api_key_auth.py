"""API-key authentication (``Authorization: Bearer obk_…`` or ``X-API-Key: obk_…``) and the
permission that holds a key to its scopes.

A key authenticates as its owner, so the roles of the REST API apply unchanged; on top of them
an org-scoped key reaches its own organization only (``organizations.permissions.org_access``
reads ``user.api_key_scope_org_id``, set here) and a key's ``scopes`` limit what it may do.
Requests authenticated by a key are not subject to CSRF (no cookie is involved).
"""

from typing import Any

from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from organizations.errors import OrganizationNotFound
from organizations.models import ApiKey, User
from organizations.services import KEY_PREFIX, authenticate_api_key

API_KEY_HEADER = "HTTP_X_API_KEY"


def presented_key(request: Request | HttpRequest) -> str | None:
    """The ``obk_`` key the request carries, if any. A bearer token that is not an API key is
    left to the bearer-token authentication (Keycloak access tokens)."""
    header_key = request.META.get(API_KEY_HEADER)
    if header_key is not None:
        return str(header_key).strip()
    parts = get_authorization_header(request).split()  # type: ignore[arg-type]  # reads META only
    if len(parts) == 2 and parts[0].lower() == b"bearer" and parts[1].startswith(KEY_PREFIX.encode()):
        return parts[1].decode("latin-1")
    return None


class ApiKeyAuthentication(BaseAuthentication):
    www_authenticate_realm = "orgbilling"

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        raw_key = presented_key(request)
        if raw_key is None:
            return None
        key = authenticate_api_key(raw_key)
        if key is None:
            raise AuthenticationFailed("The API key is invalid, expired or revoked.")
        user = key.user
        # Read by organizations.permissions.org_access: the one place org scope is enforced.
        user.api_key_scope_org_id = key.org_id  # type: ignore[attr-defined]
        return user, key

    def authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents API keys in the OpenAPI schema (``apiKeyAuth``)."""

    target_class = ApiKeyAuthentication
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "obk_…",
            "description": "An API key from `POST /api/v1/keys`, as `Authorization: Bearer obk_…` "
            "(or in an `X-API-Key` header).",
        }


def request_api_key(request: Request) -> ApiKey | None:
    """The API key the request was authenticated with, if it was."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


def _named_org_ids(request: Request, view: Any) -> set[str]:
    """Every organization the request names: the URL, ``X-Org-Id``, ``?org_id=``, and the
    ``org_id`` of a JSON body that changes something."""
    named = {
        getattr(view, "kwargs", {}).get("org_id"),
        request.META.get("HTTP_X_ORG_ID"),
        request.query_params.get("org_id"),
    }
    if request.method not in SAFE_METHODS and isinstance(request.data, dict):
        named.add(request.data.get("org_id"))
    return {org_id for org_id in named if isinstance(org_id, str) and org_id}


class ApiKeyScopePermission(BasePermission):
    """A key may read with ``read`` and change things with ``write``; a view that needs another
    scope names it in ``required_api_key_scope`` (the service charge endpoint: ``charge``).

    An org-scoped key naming another organization anywhere in the request answers 404 before
    the view runs. ``org_access`` is where scope is enforced; this backstop also covers the
    views that take an org id without reading an org through it (creating a subscription for
    a new org, choosing the default org, picking the org that pays with ``X-Org-Id``).
    Sessions and bearer tokens are not limited here.
    """

    message = "This API key's scopes do not allow this request."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request_api_key(request)
        if key is None:
            return True
        needed = getattr(view, "required_api_key_scope", None)
        if needed is None:
            needed = ApiKey.Scope.READ if request.method in SAFE_METHODS else ApiKey.Scope.WRITE
        if str(needed) not in key.scopes:
            return False
        if key.org_id is not None:
            for org_id in _named_org_ids(request, view):
                if org_id != key.org_id:
                    raise OrganizationNotFound(details={"org_id": org_id})
        return True
