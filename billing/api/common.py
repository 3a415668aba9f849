"""Small helpers shared by the org-billing views: ``user_id`` lookups, input."""

__all__ = ["user_by_id", "valid_input"]

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from organizations.selectors import user_by_id


def valid_input(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The request body validated by ``serializer_class`` (400 ``validation_error`` otherwise)."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
