"""The periodic pass over recurring allocations: apply every period boundary that is due.

Each allocation is one transaction (``billing.ledger.periods.apply_allocation_periods_for``:
pool → department → allocation locked, one ``AllocationPeriod`` row per boundary, unique on
(allocation, period_start)), so two passes at once, a retried task or a run after downtime
apply each boundary exactly once, the missed ones in order.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from billing.ledger.periods import (
    PERIOD_ACTOR,
    PeriodsApplied,
    PeriodSkipped,
    apply_allocation_periods_for,
    due_boundaries,
)
from billing.models import UserCreditAllocation

logger = logging.getLogger(__name__)

__all__ = [
    "PeriodSkipped",
    "PeriodsApplied",
    "PeriodsOutcome",
    "allocations_with_due_periods",
    "apply_allocation_periods",
    "apply_allocation_periods_for",
    "due_boundaries",
    "iter_apply_allocation_periods",
]


@dataclass(frozen=True)
class PeriodsOutcome:
    """What one pass did."""

    applied: list[PeriodsApplied]
    skipped: dict[int, PeriodSkipped]

    @property
    def boundaries(self) -> int:
        return sum(len(item.rows) for item in self.applied)

    @property
    def shortfall(self) -> int:
        return sum(item.shortfall for item in self.applied)


def allocations_with_due_periods(*, now: datetime) -> QuerySet[UserCreditAllocation]:
    """Active recurring allocations with a boundary at or before ``now``, the oldest first."""
    return UserCreditAllocation.objects.filter(is_active=True, next_period_start__lte=now).order_by(
        "next_period_start", "pk"
    )


def iter_apply_allocation_periods(
    *, now: datetime | None = None, actor_label: str = PERIOD_ACTOR
) -> Iterator[tuple[int, PeriodsApplied | PeriodSkipped]]:
    """Apply the due boundaries of every recurring allocation, one transaction each, yielding
    ``(allocation_id, outcome)`` as it goes (for progress bars)."""
    cutoff = now or timezone.now()
    ids = list(allocations_with_due_periods(now=cutoff).values_list("pk", flat=True))
    for allocation_id in ids:
        yield (
            allocation_id,
            apply_allocation_periods_for(allocation_id=allocation_id, now=cutoff, actor_label=actor_label),
        )


def apply_allocation_periods(
    *, now: datetime | None = None, actor_label: str = PERIOD_ACTOR
) -> PeriodsOutcome:
    """Apply every due period boundary; see ``iter_apply_allocation_periods``."""
    applied: list[PeriodsApplied] = []
    skipped: dict[int, PeriodSkipped] = {}
    for allocation_id, outcome in iter_apply_allocation_periods(now=now, actor_label=actor_label):
        if isinstance(outcome, PeriodsApplied):
            applied.append(outcome)
        else:
            skipped[allocation_id] = outcome
    result = PeriodsOutcome(applied=applied, skipped=skipped)
    if result.shortfall:
        logger.warning(
            "apply_allocation_periods: %d millicredits short (pool or department budget lacked them)",
            result.shortfall,
        )
    return result
