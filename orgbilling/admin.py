"""Admin building blocks both apps use: read-only admins for rows only services write, and
balance columns shown in credits. Registers nothing (``orgbilling`` is not an installed app)."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model
from django.http import HttpRequest

from orgbilling.money import millicredits_to_credits


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services: viewable, never added, edited or deleted in the admin.
    A POST to their change page is refused (403) by Django because change is not permitted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


_DERIVED: Any = object()


def credits_display(
    attr: str, description: str, *, ordering: Any = _DERIVED
) -> Callable[[Any, Model], Decimal | None]:
    """A read-only admin column (or change-page field) showing millicredits as credits.

    ``attr`` may follow one relation (``"credit_pool.total_credits"``); a missing related row
    shows as empty. Sorting follows the same path unless ``ordering`` says otherwise (a
    property such as ``available_credits`` needs an expression, or ``None``).
    """
    path = attr.split(".")

    @admin.display(
        description=description, ordering=attr.replace(".", "__") if ordering is _DERIVED else ordering
    )
    def display(_admin: Any, obj: Model) -> Decimal | None:
        value: Any = obj
        try:
            for name in path:
                value = getattr(value, name)
        except ObjectDoesNotExist:
            return None
        return None if value is None else millicredits_to_credits(value)

    display.__name__ = f"{attr.replace('.', '_')}_in_credits"
    return display
