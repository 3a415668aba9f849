"""The balances: an organization's credit pool, its members' allocations, and a user's own
(individual) credits."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from organizations.models import Organization


class OrganizationCreditPool(models.Model):
    """An organization's shared credits.

    ``total_credits`` is everything ever put in; ``allocated_credits`` is what is committed: the
    ``allocated_credits`` of every allocation outside a department (a revoked allocation keeps
    only what it used) plus every department's ``budget_credits``; ``used_credits`` is what was
    consumed (by every allocation). Available = total − allocated.
    """

    org = models.OneToOneField(
        Organization, primary_key=True, on_delete=models.PROTECT, related_name="credit_pool"
    )
    total_credits = models.BigIntegerField(default=0)
    allocated_credits = models.BigIntegerField(default=0)
    used_credits = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "organization_credit_pools"
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(allocated_credits__gte=0) & Q(allocated_credits__lte=F("total_credits")),
                name="credit_pools_allocated_within_total",
            ),
            models.CheckConstraint(
                condition=Q(used_credits__gte=0) & Q(used_credits__lte=F("allocated_credits")),
                name="credit_pools_used_within_allocated",
            ),
        ]

    def __str__(self) -> str:
        return f"pool of {self.org_id}"

    @property
    def available_credits(self) -> int:
        return self.total_credits - self.allocated_credits


class Department(models.Model):
    """A part of an organization (org → department → member) with a budget carved from the pool.

    ``budget_credits`` is counted in the pool's ``allocated_credits`` as one block, like an
    allocation; the department's own allocations are carved from the budget (``allocated_credits``
    here is the sum of their ``allocated_credits``, a revoked one keeping what it used), never from
    the pool a second time. What they used is read from the allocations, so a charge never locks
    this row. A deleted department keeps its row (``deleted_at``) with ``budget = allocated``: the
    credits its revoked allocations consumed stay accounted for.
    """

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="departments")
    name = models.CharField(max_length=100)
    budget_credits = models.BigIntegerField(default=0)
    allocated_credits = models.BigIntegerField(default=0)
    managers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="managed_departments",
        db_table="department_managers",
    )
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "departments"
        ordering = ["org_id", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["org", "name"],
                condition=Q(deleted_at__isnull=True),
                name="departments_unique_live_name",
            ),
            models.CheckConstraint(
                condition=Q(allocated_credits__gte=0) & Q(allocated_credits__lte=F("budget_credits")),
                name="departments_allocated_within_budget",
            ),
            models.CheckConstraint(
                condition=Q(deleted_at__isnull=True) | Q(budget_credits=F("allocated_credits")),
                name="departments_deleted_keeps_only_allocated",
            ),
        ]

    def __str__(self) -> str:
        return f"department {self.name} of {self.org_id}"

    @property
    def free_credits(self) -> int:
        return self.budget_credits - self.allocated_credits


class Period(models.TextChoices):
    """How often a recurring allocation starts over (UTC boundaries; weeks start on Monday)."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class PeriodMode(models.TextChoices):
    """What a period boundary does: ``reset`` hands the unspent credits back and grants the
    amount afresh; ``refill`` tops up to the amount, carrying unspent credits over up to
    ``rollover_cap_credits``."""

    RESET = "reset"
    REFILL = "refill"


class UserCreditAllocation(models.Model):
    """A member's share of the pool, or of a department's budget when ``department`` is set
    (fixed at creation). At most one active allocation per (org, user).

    ``used + reserved ≤ allocated`` always; free = allocated − used − reserved.
    """

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="allocations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_allocations"
    )
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="allocations"
    )
    allocated_credits = models.BigIntegerField(default=0)
    used_credits = models.BigIntegerField(default=0)
    reserved_credits = models.BigIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Optional per-member daily cap: what may be charged or held per UTC day. ``cap_day_spent``
    # is what was charged or is held on ``cap_day`` (kept whether or not a cap is set, so a cap
    # set mid-day counts the day so far); a later day starts from 0.
    daily_cap_credits = models.BigIntegerField(null=True, blank=True)
    cap_day = models.DateField(null=True, blank=True)
    cap_day_spent = models.BigIntegerField(default=0)
    # Recurrence (optional; see ``billing.ledger.periods``): each UTC ``period`` boundary resets
    # or refills the member's spendable credits to ``period_amount_credits``. ``used_credits``
    # stays lifetime consumption; ``period_start_used_credits`` is what it was when the current
    # period began. The period fields are set together, or none (``period`` "": not recurring).
    period = models.CharField(max_length=8, choices=Period.choices, blank=True, default="")
    period_mode = models.CharField(max_length=8, choices=PeriodMode.choices, blank=True, default="")
    period_amount_credits = models.BigIntegerField(null=True, blank=True)
    rollover_cap_credits = models.BigIntegerField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    next_period_start = models.DateTimeField(null=True, blank=True)
    period_start_used_credits = models.BigIntegerField(default=0)
    allocated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "user_credit_allocations"
        ordering = ["org_id", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["org", "user"],
                condition=Q(is_active=True),
                name="allocations_one_active_per_org_user",
            ),
            models.CheckConstraint(
                condition=Q(used_credits__gte=0) & Q(reserved_credits__gte=0),
                name="allocations_counters_nonnegative",
            ),
            models.CheckConstraint(
                condition=Q(allocated_credits__gte=F("used_credits") + F("reserved_credits")),
                name="allocations_used_reserved_within_allocated",
            ),
            models.CheckConstraint(
                condition=(Q(daily_cap_credits__isnull=True) | Q(daily_cap_credits__gte=0))
                & Q(cap_day_spent__gte=0),
                name="allocations_daily_cap_nonnegative",
            ),
            models.CheckConstraint(
                condition=(
                    Q(
                        period="",
                        period_mode="",
                        period_amount_credits__isnull=True,
                        rollover_cap_credits__isnull=True,
                        current_period_start__isnull=True,
                        next_period_start__isnull=True,
                    )
                    | Q(
                        period__in=Period.values,
                        period_mode__in=PeriodMode.values,
                        period_amount_credits__gte=0,
                        current_period_start__isnull=False,
                        next_period_start__gt=F("current_period_start"),
                    )
                )
                & (
                    Q(rollover_cap_credits__isnull=True)
                    | Q(rollover_cap_credits__gte=0, period_mode="refill")
                ),
                name="allocations_period_complete",
            ),
            # A revoked allocation keeps exactly what it consumed and holds nothing.
            models.CheckConstraint(
                condition=Q(is_active=True)
                | (Q(allocated_credits=F("used_credits")) & Q(reserved_credits=0)),
                name="allocations_inactive_settled",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["user", "is_active"], name="allocations_user_active"),
            # The periodic pass's "which boundaries are due" scan.
            models.Index(
                fields=["next_period_start"],
                condition=Q(is_active=True, next_period_start__isnull=False),
                name="allocations_period_due",
            ),
        ]

    def __str__(self) -> str:
        return f"allocation #{self.pk} {self.user_id}@{self.org_id}"

    @property
    def free_credits(self) -> int:
        return self.allocated_credits - self.used_credits - self.reserved_credits


class IndividualCreditBalance(models.Model):
    """A user's own credits, used when they bill without an organization."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.PROTECT,
        related_name="individual_credits",
    )
    total_credits = models.BigIntegerField(default=0)
    used_credits = models.BigIntegerField(default=0)
    reserved_credits = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "individual_credit_balances"
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(used_credits__gte=0) & Q(reserved_credits__gte=0),
                name="individual_counters_nonnegative",
            ),
            models.CheckConstraint(
                condition=Q(total_credits__gte=F("used_credits") + F("reserved_credits")),
                name="individual_used_reserved_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"individual credits of {self.user_id}"

    @property
    def free_credits(self) -> int:
        return self.total_credits - self.used_credits - self.reserved_credits
