"""The outcome of each ledger reconciliation run, written by ``billing.services.reconciliation``;
it moves no credits."""

from typing import ClassVar

from django.db import models


class ReconciliationRun(models.Model):
    """One run of the periodic ledger reconciliation (``billing.tasks.reconcile_credits``):
    when it finished and how many drifts it found. Appended once per run and never changed; the
    Celery worker writes it so that ``/metrics`` in any web process reads the latest."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    drift_count = models.PositiveIntegerField()

    class Meta:
        db_table = "reconciliation_runs"
        ordering = ["-finished_at", "-id"]
        indexes: ClassVar = [models.Index(fields=["-finished_at"], name="reconciliation_finished")]

    def __str__(self) -> str:
        return f"reconciliation {self.finished_at:%Y-%m-%d %H:%M}: {self.drift_count} drift(s)"
