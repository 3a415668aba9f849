"""API keys: ``/api/v1/keys[/{key_id}]`` (the caller's own keys) and
``/api/v1/organizations/{org_id}/keys[/{key_id}]`` (org admins: keys scoped to their org).

Managing keys needs a person's sign-in (session or bearer token): a request authenticated with
an API key gets 403 here, so a leaked key can neither mint successors nor revoke or list the
owner's other keys. The raw key appears once, in the answer to ``POST /keys``.
"""

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from organizations.api.common import caller
from organizations.api_keys import (
    DEFAULT_SCOPES,
    create_api_key,
    org_api_key,
    org_api_keys,
    own_api_key,
    revoke_api_key,
    user_api_keys,
)
from organizations.auth.api_keys import request_api_key
from organizations.models import ApiKey
from organizations.permissions import org_admin_access
from orgbilling.api.fields import StrictCharField, StrictSerializer
from orgbilling.api.schema import error_responses, example

TAGS = ["api keys"]

ORG_ID_PARAM = OpenApiParameter(
    "org_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Organization id (`org_abc123`)"
)
KEY_ID_PARAM = OpenApiParameter(
    "key_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The key's `id` (not the key)"
)
SCOPE_CHOICES = ApiKey.Scope.choices


class SignedInByPerson(BasePermission):
    message = "API keys cannot manage API keys; sign in (session or bearer token) to do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request_api_key(request) is None


KEY_MANAGEMENT_PERMISSIONS: list[type[BasePermission]] = [
    *cast("list[type[BasePermission]]", api_settings.DEFAULT_PERMISSION_CLASSES),
    SignedInByPerson,
]


# Serializers ----------------------------------------------------------------------------------


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


# Views ----------------------------------------------------------------------------------------


class ApiKeysView(GenericAPIView):
    serializer_class = ApiKeySerializer
    permission_classes = KEY_MANAGEMENT_PERMISSIONS

    def get_queryset(self) -> QuerySet[ApiKey]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return ApiKey.objects.none()
        return user_api_keys(user=caller(self.request))

    @extend_schema(
        operation_id="api_keys_list",
        tags=TAGS,
        summary="List your API keys",
        description="Every key you created, newest first, revoked and expired ones included. "
        "Never the keys themselves: only their prefixes.",
        responses={200: ApiKeySerializer(many=True), **error_responses(401, 403, 404, 429)},
        examples=[example("keys", _page([_KEY_EXAMPLE]))],
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiKeySerializer(page, many=True).data)

    @extend_schema(
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
    def post(self, request: Request) -> Response:
        data = ApiKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        key, raw_key = create_api_key(
            user=caller(request),
            name=values["name"],
            org_id=values.get("org_id"),
            expires_at=values.get("expires_at"),
            scopes=values.get("scopes", DEFAULT_SCOPES),
        )
        body = ApiKeyCreatedSerializer({"key": raw_key, "api_key": key}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyView(APIView):
    permission_classes = KEY_MANAGEMENT_PERMISSIONS

    @extend_schema(
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
    def delete(self, request: Request, key_id: int) -> Response:
        actor = caller(request)
        key = own_api_key(user=actor, key_id=key_id)
        return Response(ApiKeySerializer(revoke_api_key(key_id=key.pk, actor=actor)).data)


class OrgApiKeysView(GenericAPIView):
    serializer_class = ApiKeySerializer
    permission_classes = KEY_MANAGEMENT_PERMISSIONS

    def get_queryset(self) -> QuerySet[ApiKey]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return ApiKey.objects.none()
        access = org_admin_access(user=caller(self.request), org_id=self.kwargs["org_id"])
        return org_api_keys(org_id=access.org.id)

    @extend_schema(
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
    def get(self, request: Request, org_id: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiKeySerializer(page, many=True).data)


class OrgApiKeyView(APIView):
    permission_classes = KEY_MANAGEMENT_PERMISSIONS

    @extend_schema(
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
    def delete(self, request: Request, org_id: str, key_id: int) -> Response:
        actor = caller(request)
        access = org_admin_access(user=actor, org_id=org_id)
        key = org_api_key(org_id=access.org.id, key_id=key_id)
        return Response(ApiKeySerializer(revoke_api_key(key_id=key.pk, actor=actor)).data)
