"""Recording the outcome of the periodic ledger reconciliation (``ReconciliationRun``)."""

from datetime import datetime

from django.utils import timezone

from billing.models import ReconciliationRun


def record_reconciliation_run(*, started_at: datetime, drift_count: int) -> ReconciliationRun:
    """Append the run's outcome, for ``/metrics`` in every process (one insert, its own
    transaction)."""
    return ReconciliationRun.objects.create(
        started_at=started_at, finished_at=timezone.now(), drift_count=drift_count
    )
