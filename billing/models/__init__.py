"""Billing data, one module per concern; every model is re-exported here, so
``from billing.models import X`` is the one way to import a model (and Django, which imports
``billing.models``, sees them all).

- ``subscriptions``: plans and organizations' subscriptions;
- ``balances``: the credit pool, departments, members' allocations, individual credits;
- ``periods``: the boundaries applied to recurring allocations (one row each);
- ``ledger``: usage attributions, reservations, the billing history;
- ``payments``: credit purchases and auto top-up settings;
- ``individual``: a user's own credit purchases and the ledger of their individual balance;

- ``grants``: the credit grants every pool's credits enter as;
- ``webhooks``, ``audit``, ``idempotency``, ``prices``: one model each;
- ``usage``: daily rollups and usage alerts; ``reconciliation``: reconciliation runs;
- ``requests``: members' requests for more credits.

All credit columns are integer millicredits (``billing.money``). Single-row invariants are
database CHECK constraints; cross-row invariants (pool totals equal the sums of their rows) are
checked by ``billing.selectors.reconciliation`` and the ``reconcile_credits`` command.
Balances are written only by ``billing.services``.
"""

from billing.models.audit import AuditEvent
from billing.models.balances import (
    Department,
    IndividualCreditBalance,
    OrganizationCreditPool,
    Period,
    PeriodMode,
    UserCreditAllocation,
)
from billing.models.grants import CreditGrant
from billing.models.idempotency import IdempotencyRecord
from billing.models.individual import IndividualCreditEntry, IndividualCreditPurchase
from billing.models.ledger import CreditReservation, CreditUsageAttribution, OrgBillingHistory, ServiceType
from billing.models.payments import AutoTopUpSettings, CreditPurchase
from billing.models.periods import AllocationPeriod
from billing.models.prices import ModelPrice
from billing.models.reconciliation import ReconciliationRun
from billing.models.requests import CreditRequest
from billing.models.subscriptions import OrganizationSubscription, Plan
from billing.models.usage import UsageAlert, UsageDailyRollup, UsageRollupDay
from billing.models.webhooks import WebhookEvent

__all__ = [
    "AllocationPeriod",
    "AuditEvent",
    "AutoTopUpSettings",
    "CreditGrant",
    "CreditPurchase",
    "CreditRequest",
    "CreditReservation",
    "CreditUsageAttribution",
    "Department",
    "IdempotencyRecord",
    "IndividualCreditBalance",
    "IndividualCreditEntry",
    "IndividualCreditPurchase",
    "ModelPrice",
    "OrgBillingHistory",
    "OrganizationCreditPool",
    "OrganizationSubscription",
    "Period",
    "PeriodMode",
    "Plan",
    "ReconciliationRun",
    "ServiceType",
    "UsageAlert",
    "UsageDailyRollup",
    "UsageRollupDay",
    "UserCreditAllocation",
    "WebhookEvent",
]
