"""The ledger services (DESIGN.md §5): every write to a balance goes through one of these."""

from billing.services.charging import (
    DeductionResult,
    ReservationResult,
    add_individual_credits,
    expire_reservations,
    release_reservation,
    reserve_credits,
    settle_reservation,
)
from billing.services.context import BillingContext, resolve_billing_context
from billing.services.deduction import deduct_credits, has_sufficient_credits
from billing.services.pool import (
    AllocationChange,
    PoolChange,
    TransferResult,
    add_credits_to_pool,
    adjust_allocation,
    allocate_credits_to_user,
    revoke_allocation,
    transfer_credits,
)

__all__ = [
    "AllocationChange",
    "BillingContext",
    "DeductionResult",
    "PoolChange",
    "ReservationResult",
    "TransferResult",
    "add_credits_to_pool",
    "add_individual_credits",
    "adjust_allocation",
    "allocate_credits_to_user",
    "deduct_credits",
    "expire_reservations",
    "has_sufficient_credits",
    "release_reservation",
    "reserve_credits",
    "resolve_billing_context",
    "revoke_allocation",
    "settle_reservation",
    "transfer_credits",
]
