"""Typed refusals of the ledger services. Each has a stable code and an HTTP status."""

from typing import Any

from organizations.errors import NotAMember, OrganizationInactive, OrganizationNotFound, UserNotFound
from orgbilling.errors import (
    ApplicationError,
    Conflict,
    Forbidden,
    InvalidAmount,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)

__all__ = [
    "AllocationBelowCommitted",
    "AllocationExceedsDepartmentBudget",
    "AllocationExceedsPool",
    "AllocationExpired",
    "AllocationHasHolds",
    "AllocationInOtherDepartment",
    "AutoTopUpNeedsCard",
    "BillingBackendRejected",
    "BillingBackendUnavailable",
    "ByokDisabled",
    "CreditRequestAlreadyOpen",
    "CreditRequestNotFound",
    "CreditRequestNotPending",
    "CreditRequestNotYours",
    "DailyCapReached",
    "DepartmentAccessDenied",
    "DepartmentBudgetBelowAllocated",
    "DepartmentHasAllocations",
    "DepartmentNameTaken",
    "DepartmentNotFound",
    "DuplicateSubscription",
    "GatewayNotConfigured",
    "InsufficientCredits",
    "InvalidAmount",
    "InvalidTransfer",
    "InvalidWebhookSignature",
    "MalformedRequest",
    "MalformedWebhook",
    "NoActiveAllocation",
    "NoAllocation",
    "NotAMember",
    "OrganizationInactive",
    "OrganizationNotFound",
    "OwnCreditRequest",
    "PaymentDeclined",
    "PaymentRequired",
    "PaymentsNotConfigured",
    "PlanUnchanged",
    "PurchaseNotFound",
    "QuotaExceeded",
    "RateLimitExceeded",
    "RequestIdConflict",
    "ReservationNotFound",
    "ReservationNotHeld",
    "SubscriptionNotFound",
    "UnknownModel",
    "UnknownPlan",
    "UnsupportedParameter",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UserNotFound",
    "WebhookNotConfigured",
]


class NoActiveAllocation(ApplicationError):
    status_code = 402
    code = "no_active_allocation"
    default_message = "The user has no active credit allocation in this organization."


class AllocationExpired(ApplicationError):
    status_code = 402
    code = "allocation_expired"
    default_message = "The user's credit allocation has expired."


class InsufficientCredits(ApplicationError):
    status_code = 402
    code = "insufficient_credits"
    default_message = "Not enough credits."


class AllocationExceedsPool(Conflict):
    code = "allocation_exceeds_pool"
    default_message = "The organization's pool does not have that many unallocated credits."


class AllocationBelowCommitted(Conflict):
    code = "allocation_below_usage"
    default_message = "An allocation cannot go below what is already used or held."


class AllocationHasHolds(Conflict):
    code = "allocation_has_active_holds"
    default_message = "The allocation has credits held by calls in flight; retry when they finish."


class InvalidTransfer(ValidationFailed):
    code = "invalid_transfer"
    default_message = "Credits can only be transferred between two different members."


class RequestIdConflict(Conflict):
    code = "request_id_conflict"
    default_message = "This request id was already used for a different charge."


class ReservationNotFound(NotFound):
    code = "reservation_not_found"
    default_message = "Reservation not found."


class ReservationNotHeld(Conflict):
    code = "reservation_not_held"
    default_message = "The reservation is no longer held."


class UnknownPlan(ValidationFailed):
    code = "unknown_plan"
    default_message = "There is no active plan with this code."


class DuplicateSubscription(Conflict):
    code = "duplicate_subscription"
    default_message = "The organization already has a live subscription."


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"
    default_message = "The organization has no live subscription."


class PlanUnchanged(Conflict):
    code = "plan_unchanged"
    default_message = "The subscription is already on this plan."


class PaymentRequired(ApplicationError):
    status_code = 402
    code = "payment_required"
    default_message = "Credits must be bought through a payment; only system admins grant credits."


class BillingBackendUnavailable(ServiceUnavailable):
    code = "billing_backend_unavailable"
    default_message = "The billing backend is unavailable; the change was not completed. Try again."


class BillingBackendRejected(ApplicationError):
    """The billing backend refused the request itself (an HTTP 4xx other than 429): trying the
    same call again cannot succeed."""

    status_code = 502
    code = "billing_backend_rejected"
    default_message = "The billing backend refused the request; the change was not made."


class PaymentsNotConfigured(ServiceUnavailable):
    code = "payments_not_configured"
    default_message = "Credit purchases by card are not available yet; ask a system admin to grant credits."


class UnknownModel(ValidationFailed):
    code = "unknown_model"
    default_message = "There is no price for this model."


class UnpricedImageOption(ValidationFailed):
    code = "unpriced_image_option"
    default_message = "This model has no price for the image size and quality asked for."


# --- The LLM gateway's refusals and upstream failures (DESIGN.md §6) ---------------------------


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


class RateLimitExceeded(QuotaExceeded):
    """An organization's per-minute gateway limit (requests or tokens) of its plan's tier."""

    code = "rate_limit_exceeded"
    default_message = "The organization's per-minute limit of its plan's tier is reached."


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


# --- Payments ------------------------------------------------------------------------------------


class PaymentDeclined(ApplicationError):
    """A card charged off-session was declined (or needs its holder): that attempt failed."""

    status_code = 402
    code = "payment_declined"
    default_message = "The card was declined."

    def __init__(self, message: str | None = None, *, payment_intent: str | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.payment_intent = payment_intent


# --- Refusals of an incoming webhook (nothing is stored for any of them) -------------------------


class InvalidWebhookSignature(ValidationFailed):
    code = "invalid_signature"
    default_message = "The webhook signature is missing, malformed, stale or wrong."


class MalformedWebhook(ValidationFailed):
    code = "malformed_webhook"
    default_message = "The webhook body is not a valid event."


class WebhookNotConfigured(ServiceUnavailable):
    code = "webhook_not_configured"
    default_message = "This webhook is not configured on the server; it cannot be verified."


class UnsupportedParameter(ValidationFailed):
    code = "unsupported_parameter"
    default_message = "The request uses a parameter the gateway does not price."


class MalformedRequest(ValidationFailed):
    code = "malformed_request"
    default_message = "The request body is not a JSON object."


class AutoTopUpNeedsCard(Conflict):
    code = "auto_topup_payment_method_required"
    default_message = (
        "Auto top-up needs a saved card: turn on save_card_at_checkout, buy credits once by card, "
        "then enable auto top-up."
    )


class PurchaseNotFound(NotFound):
    code = "purchase_not_found"
    default_message = "No credit purchase matches this payment."


class DepartmentNotFound(NotFound):
    code = "department_not_found"
    default_message = "No such department in this organization."


class DepartmentAccessDenied(Forbidden):
    code = "department_access_denied"
    default_message = (
        "Department managers act only on allocations of the departments they manage; "
        "the organization's pool and other departments are for its admins."
    )


class AllocationExceedsDepartmentBudget(Conflict):
    code = "allocation_exceeds_department_budget"
    default_message = "The department's budget does not have that many unallocated credits."


class AllocationInOtherDepartment(Conflict):
    code = "allocation_in_other_department"
    default_message = (
        "The member's active allocation belongs to another department (or to none); "
        "revoke it first to move the member."
    )


class DepartmentBudgetBelowAllocated(Conflict):
    code = "department_budget_below_allocated"
    default_message = "A department's budget cannot go below what its allocations hold."


class DepartmentHasAllocations(Conflict):
    code = "department_has_allocations"
    default_message = "The department still has active allocations; revoke them first."


class DepartmentNameTaken(Conflict):
    code = "department_name_taken"
    default_message = "The organization already has a department of that name."


class DailyCapReached(ApplicationError):
    status_code = 402
    code = "daily_cap_reached"
    default_message = "The member's daily spending cap is reached; it resets at midnight UTC."


class CreditRequestNotFound(NotFound):
    code = "credit_request_not_found"
    default_message = "No such credit request in this organization (or not one you may see)."


class CreditRequestNotPending(Conflict):
    code = "request_not_pending"
    default_message = "The credit request was already approved, declined or cancelled."


class CreditRequestAlreadyOpen(Conflict):
    code = "credit_request_already_open"
    default_message = (
        "You already have a pending credit request here: cancel it first to ask for a different amount."
    )


class OwnCreditRequest(Forbidden):
    code = "own_credit_request"
    default_message = "Nobody approves or declines their own credit request; another admin or manager must."


class CreditRequestNotYours(Forbidden):
    code = "credit_request_not_yours"
    default_message = "Only the member who asked may cancel a credit request."
