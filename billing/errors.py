"""Typed refusals of the ledger services. Each has a stable code and an HTTP status."""

from organizations.errors import NotAMember, OrganizationInactive, OrganizationNotFound, UserNotFound
from orgbilling.errors import (
    ApplicationError,
    Conflict,
    InvalidAmount,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)

__all__ = [
    "AllocationBelowCommitted",
    "AllocationExceedsPool",
    "AllocationExpired",
    "AllocationHasHolds",
    "BillingBackendRejected",
    "BillingBackendUnavailable",
    "DuplicateSubscription",
    "InsufficientCredits",
    "InvalidAmount",
    "InvalidTransfer",
    "NoActiveAllocation",
    "NotAMember",
    "OrganizationInactive",
    "OrganizationNotFound",
    "PaymentRequired",
    "PaymentsNotConfigured",
    "PlanUnchanged",
    "RequestIdConflict",
    "ReservationNotFound",
    "ReservationNotHeld",
    "SubscriptionNotFound",
    "UnknownModel",
    "UnknownPlan",
    "UserNotFound",
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
