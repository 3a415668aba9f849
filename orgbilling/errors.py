"""The application's error hierarchy: one base class, one subclass per refusal.

Every domain error carries a stable ``code``, a human ``message``, structured ``details`` and
the HTTP ``status_code`` the API renders it with (DESIGN.md §6). Services raise these; nothing
catches them to turn them into something else except the API's single exception handler.
"""

from typing import Any, ClassVar


class ApplicationError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "error"
    default_message: ClassVar[str] = "The request could not be completed."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationFailed(ApplicationError):
    status_code = 400
    code = "validation_error"
    default_message = "The input is not valid."


class InvalidAmount(ValidationFailed):
    code = "invalid_amount"
    default_message = "The amount is not a valid credit amount."


class NotFound(ApplicationError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(ApplicationError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class Forbidden(ApplicationError):
    status_code = 403
    code = "forbidden"
    default_message = "You do not have permission to do this."


class ServiceUnavailable(ApplicationError):
    status_code = 503
    code = "service_unavailable"
    default_message = "A backing service is unavailable; try again shortly."


class DatabaseUnavailable(ServiceUnavailable):
    """The database could not be used; nothing was written (the transaction rolled back).
    Rendered with ``Retry-After``; see ``orgbilling.db.database_refusal``."""

    code = "service_unavailable"
    default_message = "The billing database is unavailable; try again shortly."
    retry_after: ClassVar[int] = 5

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        super().__init__(message, details={"retry_after_seconds": self.retry_after, **(details or {})})


class DatabaseBusy(DatabaseUnavailable):
    """No pooled connection became free in time, or a row lock was not granted in time."""

    code = "database_busy"
    default_message = "The database is busy; nothing was changed. Try again."
    retry_after = 1


class DatabaseTimeout(DatabaseUnavailable):
    """A statement ran past its ``statement_timeout`` and was cancelled."""

    code = "database_timeout"
    default_message = "The query took too long and was stopped; nothing was changed."
    retry_after = 5
