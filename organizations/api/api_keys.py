"""API keys: ``/api/v1/keys[/{key_id}]`` (the caller's own keys) and
``/api/v1/organizations/{org_id}/keys[/{key_id}]`` (org admins: keys scoped to their org).

Managing keys needs a person's sign-in (session or bearer token): a request authenticated with
an API key gets 403 here, so a leaked key can neither mint successors nor revoke or list the
owner's other keys. The raw key appears once, in the answer to ``POST /keys``.
"""

from typing import Any, cast

from django.db.models import QuerySet
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from organizations.api.common import caller
from organizations.api.serializers.api_keys import (
    API_KEY_REVOKE_SCHEMA,
    API_KEYS_CREATE_SCHEMA,
    API_KEYS_LIST_SCHEMA,
    ORGANIZATION_API_KEY_REVOKE_SCHEMA,
    ORGANIZATION_API_KEYS_LIST_SCHEMA,
    ApiKeyCreatedSerializer,
    ApiKeyCreateInput,
    ApiKeySerializer,
)
from organizations.auth.api_key_auth import request_api_key
from organizations.models import ApiKey
from organizations.permissions import org_admin_access
from organizations.selectors import org_api_key, org_api_keys, own_api_key, user_api_keys
from organizations.services import DEFAULT_SCOPES, create_api_key, revoke_api_key


class SignedInByPerson(BasePermission):
    message = "API keys cannot manage API keys; sign in (session or bearer token) to do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request_api_key(request) is None


KEY_MANAGEMENT_PERMISSIONS: list[type[BasePermission]] = [
    *cast("list[type[BasePermission]]", api_settings.DEFAULT_PERMISSION_CLASSES),
    SignedInByPerson,
]


class ApiKeysView(GenericAPIView):
    serializer_class = ApiKeySerializer
    permission_classes = KEY_MANAGEMENT_PERMISSIONS

    def get_queryset(self) -> QuerySet[ApiKey]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return ApiKey.objects.none()
        return user_api_keys(user=caller(self.request))

    @API_KEYS_LIST_SCHEMA
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiKeySerializer(page, many=True).data)

    @API_KEYS_CREATE_SCHEMA
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

    @API_KEY_REVOKE_SCHEMA
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

    @ORGANIZATION_API_KEYS_LIST_SCHEMA
    def get(self, request: Request, org_id: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiKeySerializer(page, many=True).data)


class OrgApiKeyView(APIView):
    permission_classes = KEY_MANAGEMENT_PERMISSIONS

    @ORGANIZATION_API_KEY_REVOKE_SCHEMA
    def delete(self, request: Request, org_id: str, key_id: int) -> Response:
        actor = caller(request)
        access = org_admin_access(user=actor, org_id=org_id)
        key = org_api_key(org_id=access.org.id, key_id=key_id)
        return Response(ApiKeySerializer(revoke_api_key(key_id=key.pk, actor=actor)).data)
