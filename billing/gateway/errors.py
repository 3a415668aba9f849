"""The gateway's refusals and upstream failures, in the one error shape (DESIGN.md §6)."""

from typing import Any

from orgbilling.errors import ApplicationError


class NoAllocation(ApplicationError):
    """The ledger's ``no_active_allocation``, under the name the gateway's clients know."""

    status_code = 402
    code = "no_allocation"
    default_message = "The user has no active credit allocation in this organization."


class QuotaExceeded(ApplicationError):
    status_code = 429
    code = "quota_exceeded"
    default_message = "The organization's plan quota of API calls is used up."

    def __init__(
        self, message: str | None = None, *, retry_after: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details={**(details or {}), "retry_after_seconds": retry_after})
        self.retry_after = retry_after


class ByokDisabled(ApplicationError):
    status_code = 403
    code = "byok_disabled"
    default_message = "Bringing your own provider key is not enabled here."


class GatewayNotConfigured(ApplicationError):
    status_code = 503
    code = "gateway_not_configured"
    default_message = "The LLM gateway has no upstream configured."


class UpstreamError(ApplicationError):
    status_code = 502
    code = "upstream_error"
    default_message = "The model provider failed; nothing was charged."


class UpstreamTimeout(ApplicationError):
    status_code = 504
    code = "upstream_timeout"
    default_message = "The model provider did not answer in time; nothing was charged."


class UpstreamRejected(ApplicationError):
    """The upstream refused the call (4xx): its status is passed on to the caller."""

    code = "upstream_rejected"
    default_message = "The model provider rejected the request; nothing was charged."

    def __init__(
        self, message: str | None = None, *, status: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.upstream_status = status


def http_status(error: ApplicationError) -> int:
    return error.upstream_status if isinstance(error, UpstreamRejected) else error.status_code
