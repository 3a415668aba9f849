"""Credit grants: every credit that enters an organization's pool enters as a grant, with an
optional expiry and a burn-down priority (``billing.ledger.grants``)."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from billing.models.ledger import OrgBillingHistory
from billing.models.payments import CreditPurchase
from organizations.models import Organization

DEFAULT_GRANT_PRIORITY = 10
MAX_GRANT_PRIORITY = 1000


class CreditGrant(models.Model):
    """One block of credits put into a pool: a purchase, an auto top-up, a manual grant, a
    promotion, a subscription's initial credits, or (``legacy``) what a pool held before grants
    existed.

    Rows are never deleted. ``credits`` never changes; what later leaves the pool is counted in
    ``forfeited_credits`` (the expiry took it back, once per step through a ``credit_expiry``
    history row) or ``refunded_credits`` (a refunded purchase), so the pool's total is always
    the sum of ``credits - forfeited - refunded`` (reconciliation checks it).
    ``consumed_credits`` is the pool's usage attributed to this grant in burn-down order as of
    the last time the grants were checkpointed under the pool lock (a grant added, expired or
    refunded); usage since then is spread when it is read, so a charge never touches this row.
    ``retained_credits``: of an expired grant, what stayed in the pool at its last expiry step
    because members (or department budgets) held it.
    """

    class Source(models.TextChoices):
        PURCHASE = "purchase", "Purchase"
        AUTO_TOPUP = "auto_topup", "Auto top-up"
        MANUAL = "manual", "Manual grant"
        PROMOTION = "promotion", "Promotion"
        SUBSCRIPTION = "subscription", "Subscription's initial credits"
        LEGACY = "legacy", "Before grants (migration)"

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="credit_grants")
    source = models.CharField(max_length=16, choices=Source.choices)
    credits = models.BigIntegerField(help_text="millicredits granted")
    priority = models.IntegerField(
        default=DEFAULT_GRANT_PRIORITY, help_text="burn-down order: a lower number is spent first"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    history = models.OneToOneField(
        OrgBillingHistory,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="grant",
        help_text="the ledger transaction that put the credits in (none for legacy grants)",
    )
    purchase = models.OneToOneField(
        CreditPurchase, null=True, blank=True, on_delete=models.PROTECT, related_name="grant"
    )
    consumed_credits = models.BigIntegerField(default=0)
    forfeited_credits = models.BigIntegerField(default=0)
    refunded_credits = models.BigIntegerField(default=0)
    retained_credits = models.BigIntegerField(default=0)
    expired_at = models.DateTimeField(null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "credit_grants"
        ordering = ["org_id", "id"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="grants_credits_positive"),
            models.CheckConstraint(
                condition=Q(consumed_credits__gte=0)
                & Q(forfeited_credits__gte=0)
                & Q(refunded_credits__gte=0)
                & Q(retained_credits__gte=0),
                name="grants_counters_nonnegative",
            ),
            models.CheckConstraint(
                condition=Q(
                    credits__gte=F("consumed_credits") + F("forfeited_credits") + F("refunded_credits")
                ),
                name="grants_within_credits",
            ),
            models.CheckConstraint(
                condition=Q(forfeited_credits=0, retained_credits=0) | Q(expired_at__isnull=False),
                name="grants_forfeit_only_when_expired",
            ),
            models.CheckConstraint(
                condition=Q(
                    source__in=["purchase", "auto_topup", "manual", "promotion", "subscription", "legacy"]
                ),
                name="grants_source_valid",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["expires_at"], name="grants_due", condition=Q(expired_at__isnull=True)),
            models.Index(fields=["org"], name="grants_retained", condition=Q(retained_credits__gt=0)),
        ]

    def __str__(self) -> str:
        return f"grant #{self.pk} {self.source} of {self.org_id}"

    @property
    def capacity(self) -> int:
        """What the grant still counts for in the pool's total."""
        return self.credits - self.forfeited_credits - self.refunded_credits
