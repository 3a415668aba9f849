"""Helpers shared by the billing commands: turn domain errors into CommandError."""

from collections.abc import Callable
from typing import TypeVar

from django.core.management.base import CommandError

from orgbilling.errors import ApplicationError
from organizations.models import User

T = TypeVar("T")


def run_service(call: Callable[[], T]) -> T:
    try:
        return call()
    except ApplicationError as err:
        raise CommandError(f"{err.code}: {err.message} {err.details or ''}".strip()) from err


def get_user(user_id: str) -> User:
    user = User.objects.filter(username=user_id).first()
    if user is None:
        raise CommandError(f"user_not_found: no user with user_id {user_id!r}")
    return user
