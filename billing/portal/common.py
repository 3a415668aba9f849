"""What every portal page shares: sign-in required, the person's time zone, and refusals shown
next to the field that caused them in the API's own words."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from billing.portal.timezones import browser_timezone
from organizations.models import User
from orgbilling.errors import ApplicationError

View = TypeVar("View", bound=Callable[..., HttpResponse])


def portal_page(view: View) -> View:
    """Signed-in people only (others go to the sign-in page); dates in their time zone."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with timezone.override(browser_timezone(request)):
            return view(request, *args, **kwargs)

    return cast(View, wrapped)


def person(request: HttpRequest) -> User:
    return cast(User, request.user)


@dataclass
class FormErrors:
    """Which form failed (``target``: which row's, for forms repeated per row), its messages
    per field, the HTTP status the API would have answered, and what was typed (shown again).
    Messages for the form as a whole are under ``general``."""

    form: str = ""
    fields: dict[str, list[str]] = field(default_factory=dict)
    status: int = 200
    values: dict[str, str] = field(default_factory=dict)
    target: str = ""

    def __bool__(self) -> bool:
        return bool(self.fields)

    @property
    def general(self) -> list[str]:
        return self.fields.get("", [])


def _messages(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    if isinstance(value, dict):
        return [message for item in value.values() for message in _messages(item)]
    return [str(value)]


def validation_errors(form: str, detail: Any, values: dict[str, str], target: str = "") -> FormErrors:
    """A serializer's ``errors``, per field, exactly as the API answers them (400)."""
    fields = (
        {("" if name == "non_field_errors" else name): _messages(value) for name, value in detail.items()}
        if isinstance(detail, dict)
        else {"": _messages(detail)}
    )
    return FormErrors(form=form, fields=fields, status=400, values=values, target=target)


def refusal_errors(
    form: str,
    refusal: ApplicationError,
    values: dict[str, str],
    field_names: tuple[str, ...] = (),
    target: str = "",
) -> FormErrors:
    """A service's refusal, with the API's message and status, on the field its details name
    (``org_id`` for an unknown organization) or on the whole form."""
    name = next((name for name in field_names if name in refusal.details), "")
    return FormErrors(
        form=form, fields={name: [refusal.message]}, status=refusal.status_code, values=values, target=target
    )


_PLAIN_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$", re.ASCII)


def form_values(**typed: str) -> dict[str, Any]:
    """Form fields as the API's JSON parser would hand them over: a plain number becomes a
    ``Decimal`` (credits are JSON numbers), anything else stays text for the serializer to
    refuse in its own words, and an empty field is left out (the API's "This field is
    required.")."""
    values: dict[str, Any] = {}
    for name, text in typed.items():
        text = text.strip()
        if text:
            values[name] = Decimal(text) if _PLAIN_NUMBER.match(text) else text
    return values
