"""Helpers shared by the billing commands: turn domain errors into CommandError."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.management.base import CommandError

from organizations.models import User
from orgbilling.errors import ApplicationError

T = TypeVar("T")


def run_service(call: Callable[..., T], **kwargs: Any) -> T:
    """Call a service (or parser) with keyword arguments; domain errors become CommandError."""
    try:
        return call(**kwargs)
    except ApplicationError as err:
        raise CommandError(f"{err.code}: {err.message} {err.details or ''}".strip()) from err


def get_user(user_id: str) -> User:
    user = User.objects.filter(username=user_id).first()
    if user is None:
        raise CommandError(f"user_not_found: no user with user_id {user_id!r}")
    return user
