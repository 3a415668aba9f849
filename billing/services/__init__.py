"""The ledger services (DESIGN.md §5): every write to a balance goes through one of these.

They live in ``billing.ledger`` (which owns the locks, the SQL and the eligibility rule); this
package is the public facade that the API, the gateway, tasks and commands import.
"""

from billing.ledger.charges import DeductionResult, ReservationResult
from billing.ledger.deduction import deduct_credits, has_sufficient_credits
from billing.ledger.departments import (
    DepartmentDeleted,
    create_department,
    delete_department,
    update_department,
)
from billing.ledger.individual import IndividualChange, add_individual_credits, grant_individual_credits
from billing.ledger.past_usage import PastCharge, record_past_usage
from billing.ledger.periods import PeriodChange
from billing.ledger.pool import (
    KEEP,
    AllocationChange,
    PoolChange,
    TransferResult,
    add_credits_to_pool,
    adjust_allocation,
    allocate_credits_to_user,
    revoke_allocation,
    transfer_credits,
)
from billing.ledger.reservations import (
    expire_reservations,
    release_reservation,
    reserve_credits,
    settle_reservation,
)
from billing.services.context import BillingContext, resolve_billing_context

__all__ = [
    "KEEP",
    "AllocationChange",
    "BillingContext",
    "DeductionResult",
    "DepartmentDeleted",
    "IndividualChange",
    "PastCharge",
    "PeriodChange",
    "PoolChange",
    "ReservationResult",
    "TransferResult",
    "add_credits_to_pool",
    "add_individual_credits",
    "adjust_allocation",
    "allocate_credits_to_user",
    "create_department",
    "deduct_credits",
    "delete_department",
    "expire_reservations",
    "grant_individual_credits",
    "has_sufficient_credits",
    "record_past_usage",
    "release_reservation",
    "reserve_credits",
    "resolve_billing_context",
    "revoke_allocation",
    "settle_reservation",
    "transfer_credits",
    "update_department",
]
