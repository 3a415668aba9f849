"""Small helpers shared by the org-billing views: the signed-in user and ``user_id`` lookups."""

from typing import Any, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request

from billing.errors import UserNotFound
from organizations.models import User

ORG_ID_PARAM = OpenApiParameter(
    "org_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Organization id (`org_abc123`)"
)
USER_ID_PARAM = OpenApiParameter(
    "user_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The member's user id (OIDC `sub`)"
)


def caller(request: Request) -> User:
    """The authenticated user (every view here requires authentication)."""
    return cast(User, request.user)


def user_by_id(user_id: str) -> User:
    """The user whose API ``user_id`` (``User.username``) this is, or 404 ``user_not_found``."""
    user = User.objects.filter(username=user_id).first()
    if user is None:
        raise UserNotFound(details={"user_id": user_id})
    return user


def valid_input(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The request body validated by ``serializer_class`` (400 ``validation_error`` otherwise)."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
