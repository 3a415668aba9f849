"""Typed refusals of the ledger services. Each has a stable code and an HTTP status."""

from orgbilling.errors import ApplicationError, Conflict, InvalidAmount, NotFound, ValidationFailed

__all__ = [
    "AllocationBelowCommitted",
    "AllocationExceedsPool",
    "AllocationExpired",
    "AllocationHasHolds",
    "InsufficientCredits",
    "InvalidAmount",
    "InvalidTransfer",
    "NoActiveAllocation",
    "NotAMember",
    "OrganizationInactive",
    "OrganizationNotFound",
    "RequestIdConflict",
    "ReservationNotFound",
    "ReservationNotHeld",
    "UserNotFound",
]


class OrganizationNotFound(NotFound):
    code = "organization_not_found"
    default_message = "Organization not found."


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "User not found."


class NotAMember(NotFound):
    # 404 rather than 403: whether an organization exists is not the caller's business.
    code = "not_a_member"
    default_message = "The user is not an active member of this organization."


class OrganizationInactive(ApplicationError):
    status_code = 403
    code = "organization_inactive"
    default_message = "The organization is deactivated."


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
