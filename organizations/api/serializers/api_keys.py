"""API keys: ``/api/v1/keys[/{key_id}]`` and ``/api/v1/organizations/{org_id}/keys[/{key_id}]``."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from organizations.api.serializers.common import ORG_ID_PARAM
from organizations.models import ApiKey
from orgbilling.api.fields import StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example

TAGS = ["api keys"]
SCOPE_CHOICES = ApiKey.Scope.choices


# Input ----------------------------------------------------------------------------------------


class ApiKeyCreateInput(StrictSerializer):
    name = StrictCharField(max_length=100, help_text="What the key is for (`ci-deploy`, `notebook`)")
    org_id = StrictCharField(
        max_length=64,
        required=False,
        allow_null=True,
        help_text="Scope the key to this organization (one where you are an active member); "
        "omitted or null: the key acts wherever you may",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the key stops working (future); null: never"
    )
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SCOPE_CHOICES),
        required=False,
        min_length=1,
        max_length=len(SCOPE_CHOICES),
        help_text="`read` (GET), `write` (changes), `charge` (service charges); default read and write",
    )


# Output ---------------------------------------------------------------------------------------


class ApiKeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first characters, to recognise it")
    user_id = serializers.CharField(source="user.username", help_text="The key's owner")
    org_id = serializers.CharField(allow_null=True, help_text="The only organization the key reaches")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=SCOPE_CHOICES))
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="To the minute")
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiKeyCreatedSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The key itself. Shown this once: store it now.")
    api_key = ApiKeySerializer()


# Schemas --------------------------------------------------------------------------------------

KEY_ID_PARAM = OpenApiParameter(
    "key_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The key's `id` (not the key)"
)

_KEY_EXAMPLE = {
    "id": 42,
    "name": "ci-deploy",
    "prefix": "obk_3fJk9QzA",
    "user_id": "user_123",
    "org_id": "org_abc123",
    "scopes": ["read", "write"],
    "created_at": "2026-03-01T10:00:00Z",
    "expires_at": "2026-09-01T00:00:00Z",
    "last_used_at": None,
    "revoked_at": None,
}
_REVOKED_EXAMPLE = {
    **_KEY_EXAMPLE,
    "last_used_at": "2026-03-02T08:15:00Z",
    "revoked_at": "2026-03-05T12:00:00Z",
}


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(items), "next": None, "previous": None, "results": items}


API_KEYS_LIST_SCHEMA = extend_schema(
    operation_id="api_keys_list",
    tags=TAGS,
    summary="List your API keys",
    description="Every key you created, newest first, revoked and expired ones included. "
    "Never the keys themselves: only their prefixes.",
    responses={200: ApiKeySerializer(many=True), **error_responses(401, 403, 404, 429)},
    examples=[example("keys", _page([_KEY_EXAMPLE]))],
)

API_KEYS_CREATE_SCHEMA = extend_schema(
    operation_id="api_keys_create",
    tags=TAGS,
    summary="Create an API key (shown once)",
    description=(
        "Answers the key (`obk_…`) once; only its hash is stored, so it cannot be shown "
        "again. Use it as `Authorization: Bearer obk_…` (or `X-API-Key`). A key acts as you, "
        "limited to its `scopes` and, with `org_id`, to that organization (others answer "
        "404). Unknown or invisible org → 404 `organization_not_found`; a past `expires_at` "
        "→ 400. Needs a person's sign-in: API keys get 403."
    ),
    request=ApiKeyCreateInput,
    responses={201: ApiKeyCreatedSerializer, **error_responses(400, 401, 403, 404, 429)},
    examples=[
        example(
            "org-scoped, expiring",
            {"name": "ci-deploy", "org_id": "org_abc123", "expires_at": "2026-09-01T00:00:00Z"},
            request=True,
        ),
        example("read-only", {"name": "dashboard", "scopes": ["read"]}, request=True),
        example(
            "created",
            {"key": "obk_3fJk9QzA7bV2xWcY1nM4pLq8sTe6uHr0dKg5iZoEjXw", "api_key": _KEY_EXAMPLE},
            status=201,
        ),
    ],
)

API_KEY_REVOKE_SCHEMA = extend_schema(
    operation_id="api_key_revoke",
    tags=TAGS,
    summary="Revoke one of your API keys",
    description="The key stops working at once, for good. Revoking a revoked key answers it "
    "unchanged. Someone else's key → 404 `api_key_not_found`.",
    parameters=[KEY_ID_PARAM],
    request=None,
    responses={200: ApiKeySerializer, **error_responses(401, 403, 404, 429)},
    examples=[example("revoked", _REVOKED_EXAMPLE)],
)

ORGANIZATION_API_KEYS_LIST_SCHEMA = extend_schema(
    operation_id="organization_api_keys_list",
    tags=TAGS,
    summary="List the API keys scoped to the organization",
    description="Org admins and system admins: every member's keys scoped to this org, "
    "newest first, revoked and expired ones included. Members get 403; anyone who cannot "
    "see the org, 404.",
    parameters=[ORG_ID_PARAM],
    responses={200: ApiKeySerializer(many=True), **error_responses(401, 403, 404, 429)},
    examples=[example("org keys", _page([_KEY_EXAMPLE]))],
)

ORGANIZATION_API_KEY_REVOKE_SCHEMA = extend_schema(
    operation_id="organization_api_key_revoke",
    tags=TAGS,
    summary="Revoke an API key scoped to the organization",
    description="Org admins and system admins revoke any member's key scoped to this org "
    "(unscoped keys are their owners' to revoke). A key not scoped to the org → 404 "
    "`api_key_not_found`.",
    parameters=[ORG_ID_PARAM, KEY_ID_PARAM],
    request=None,
    responses={200: ApiKeySerializer, **error_responses(401, 403, 404, 429)},
    examples=[example("revoked", _REVOKED_EXAMPLE)],
)
