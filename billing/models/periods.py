"""The ledger of recurring allocations' period boundaries: one row per (allocation, boundary)."""

from typing import ClassVar

from django.db import models
from django.db.models import Q

from billing.models.balances import Department, Period, PeriodMode, UserCreditAllocation
from organizations.models import Organization


class AllocationPeriod(models.Model):
    """One period boundary applied to a recurring allocation (``billing.ledger.periods``).

    Rows are appended, never updated or deleted: each explains one change of the allocation's
    ``allocated_credits`` (and of the pool's or department's carved credits) at a boundary. The
    unique (allocation, period_start) is what makes a boundary apply exactly once: a second
    worker, a retried task or a catch-up run after downtime that tried to apply the same
    boundary again would fail on it and roll its whole transaction back.

    ``drawn`` came from the pool's available credits (or the department's free budget),
    ``returned`` went back there; at most one of them is non-zero. ``shortfall`` is what the
    boundary wanted but the source lacked.
    """

    allocation = models.ForeignKey(UserCreditAllocation, on_delete=models.PROTECT, related_name="periods")
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    period_start = models.DateTimeField(help_text="The boundary: the start of the period it opened")
    period = models.CharField(max_length=8, choices=Period.choices)
    mode = models.CharField(max_length=8, choices=PeriodMode.choices)
    amount = models.BigIntegerField(help_text="What the period grants (millicredits)")
    rollover_cap = models.BigIntegerField(null=True, blank=True)
    allocated_before = models.BigIntegerField()
    allocated_after = models.BigIntegerField()
    used = models.BigIntegerField(help_text="The allocation's lifetime used at the boundary")
    period_used = models.BigIntegerField(help_text="What the period that ended consumed")
    reserved = models.BigIntegerField(help_text="Held by calls in flight; they count in the new period")
    unspent = models.BigIntegerField(help_text="Free credits when the period ended")
    carried_over = models.BigIntegerField(default=0, help_text="Unspent credits kept (refill)")
    drawn = models.BigIntegerField(default=0)
    returned = models.BigIntegerField(default=0)
    shortfall = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(help_text="When it was applied (late after downtime)")

    class Meta:
        db_table = "allocation_periods"
        ordering = ["allocation_id", "period_start"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["allocation", "period_start"], name="allocation_periods_once"),
            models.CheckConstraint(
                condition=Q(drawn__gte=0, returned__gte=0, shortfall__gte=0, carried_over__gte=0)
                & (Q(drawn=0) | Q(returned=0)),
                name="allocation_periods_movements",
            ),
            models.CheckConstraint(
                condition=Q(created_at__gte=models.F("period_start")),
                name="allocation_periods_never_early",
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["org", "period_start"], name="allocation_periods_org")]

    def __str__(self) -> str:
        return f"period {self.period_start:%Y-%m-%d} of allocation #{self.allocation_id}"
