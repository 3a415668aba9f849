"""Data the periodic tasks derive from the ledger: daily usage rollups with their freshness
markers, and the state of usage alerts.

Written only by ``billing.services.rollups`` and ``billing.services.alerts``; they move no
credits.
"""

from datetime import timedelta
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from organizations.models import Organization

# A charge is stamped (``created_at``) inside its own short transaction, bounded by the statement
# and idle-in-transaction timeouts: an hour after a day ends, no charge of that day can still
# commit, so a rollup computed from then on is final for the day (``UsageRollupDay``).
SEAL_AFTER = timedelta(hours=1)


class UsageDailyRollup(models.Model):
    """Usage per (organization, user, model, UTC day), for fast dashboards.

    Derived from ``CreditUsageAttribution``: recomputing a day replaces that day's rows with a
    fresh aggregate, so running the rollup twice changes nothing. ``org`` is null for a user's
    individual credits (billed without an organization); those rows never mix with org rows.
    """

    org = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="usage_rollups",
        db_index=False,
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_rollups", db_index=False
    )
    model = models.CharField(max_length=200, blank=True, help_text="the attribution's service_name")
    day = models.DateField(help_text="UTC day")
    requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    # The breakdown of the totals (billing/call_usage.py); 0 on days rolled up before it existed.
    cached_tokens = models.BigIntegerField(default=0, db_default=0)
    cache_write_tokens = models.BigIntegerField(default=0, db_default=0)
    audio_input_tokens = models.BigIntegerField(default=0, db_default=0)
    reasoning_tokens = models.BigIntegerField(default=0, db_default=0)
    audio_output_tokens = models.BigIntegerField(default=0, db_default=0)
    credits_used = models.BigIntegerField(default=0, help_text="millicredits")
    computed_at = models.DateTimeField()

    class Meta:
        db_table = "usage_daily_rollups"
        ordering = ["-day", "org_id", "user_id", "model"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["org", "user", "model", "day"],
                condition=Q(org__isnull=False),
                name="rollup_unique_org_user_model_day",
            ),
            models.UniqueConstraint(
                fields=["user", "model", "day"],
                condition=Q(org__isnull=True),
                name="rollup_unique_individual_user_model_day",
            ),
            models.CheckConstraint(
                condition=Q(requests__gte=0)
                & Q(input_tokens__gte=0)
                & Q(output_tokens__gte=0)
                & Q(credits_used__gte=0),
                name="rollup_counters_nonnegative",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["org", "day"], name="rollup_org_day"),
            models.Index(fields=["user", "day"], name="rollup_user_day"),
            models.Index(fields=["day"], name="rollup_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.org_id or 'individual'} {self.user_id} {self.model}"


class UsageAlert(models.Model):
    """One usage threshold (50/80/90/100 %) of one allocation or pool in one period (UTC month).

    The row is created when usage first reaches the threshold in the period (the alert fires:
    audit event + e-mail), turns ``resolved`` when credits are added and usage falls back below
    it, and fires again only if usage reaches it again. The unique constraints make "once per
    threshold per period" a database rule, not an ``if``.
    """

    class Scope(models.TextChoices):
        ALLOCATION = "allocation", "Allocation"
        POOL = "pool", "Pool"

    class Status(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    scope = models.CharField(max_length=16, choices=Scope.choices)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="usage_alerts")
    allocation = models.ForeignKey(
        "billing.UserCreditAllocation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="usage_alerts",
    )
    threshold = models.PositiveSmallIntegerField(help_text="percent of the credits used")
    period_start = models.DateField(help_text="first day (UTC) of the month the alert belongs to")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FIRING)
    used_credits = models.BigIntegerField(help_text="millicredits used at the last change")
    capacity_credits = models.BigIntegerField(help_text="millicredits allocated (or in the pool) then")
    times_fired = models.PositiveIntegerField(default=1)
    first_fired_at = models.DateTimeField()
    last_fired_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "usage_alerts"
        ordering = ["-last_fired_at", "-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["org", "threshold", "period_start"],
                condition=Q(scope="pool"),
                name="usage_alert_once_per_pool_threshold_period",
            ),
            models.UniqueConstraint(
                fields=["allocation", "threshold", "period_start"],
                condition=Q(scope="allocation"),
                name="usage_alert_once_per_allocation_threshold_period",
            ),
            models.CheckConstraint(
                condition=(Q(scope="pool") & Q(allocation__isnull=True))
                | (Q(scope="allocation") & Q(allocation__isnull=False)),
                name="usage_alert_scope_matches_target",
            ),
            models.CheckConstraint(
                condition=Q(threshold__gte=1) & Q(threshold__lte=100), name="usage_alert_threshold_percent"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["firing", "resolved"]), name="usage_alert_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="firing", resolved_at__isnull=True)
                | Q(status="resolved", resolved_at__isnull=False),
                name="usage_alert_resolved_has_time",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["period_start", "status"], name="usage_alert_period_status"),
            models.Index(fields=["org", "period_start"], name="usage_alert_org_period"),
        ]

    def __str__(self) -> str:
        target = f"allocation #{self.allocation_id}" if self.allocation_id else "pool"
        return f"{self.org_id} {target} {self.threshold}% ({self.status}, {self.period_start:%Y-%m})"


class UsageRollupDay(models.Model):
    """Freshness marker of the daily rollups: when the last complete rollup pass over one UTC day
    (every organization, then individual credits) started.

    Written by ``billing.services.rollups`` in the transaction of a pass's last batch, so it only
    ever vouches for a pass that finished. A day counts as sealed (its rollup rows are the whole
    answer, usage-free organizations included) once a pass started ``SEAL_AFTER`` past its end;
    the analytics read any other day from the ledger.
    """

    day = models.DateField(unique=True, help_text="UTC day")
    computed_at = models.DateTimeField(help_text="start of the last complete rollup pass over the day")

    class Meta:
        db_table = "usage_rollup_days"
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.day} rolled up at {self.computed_at:%Y-%m-%d %H:%M}"
