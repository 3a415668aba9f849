"""Small helpers shared by the org-billing views: ``user_id`` lookups, input."""

__all__ = ["ORG_ID_PARAM", "USER_ID_PARAM", "user_by_id", "valid_input"]

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request

from organizations.selectors import user_by_id

ORG_ID_PARAM = OpenApiParameter(
    "org_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Organization id (`org_abc123`)"
)
USER_ID_PARAM = OpenApiParameter(
    "user_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The member's user id (OIDC `sub`)"
)


def valid_input(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The request body validated by ``serializer_class`` (400 ``validation_error`` otherwise)."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
