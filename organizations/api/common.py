"""What every API view of both apps shares about its request."""

from typing import cast

from rest_framework.request import Request

from organizations.models import User


def caller(request: Request) -> User:
    """The authenticated user (every view using this requires authentication)."""
    return cast(User, request.user)
