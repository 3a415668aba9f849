"""A user's own credits, money in and out: card purchases (Stripe Checkout) and the append-only
ledger of every change to an ``IndividualCreditBalance``'s total."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from organizations.models import Organization


class IndividualCreditPurchase(models.Model):
    """Credits a user bought for themselves by card. Fulfilled, i.e. added to their individual
    balance, exactly once (the row is locked and must be open; the ledger entry is keyed by the
    Checkout Session). Same states as an organization's ``CreditPurchase``."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        FULFILLED = "fulfilled", "Fulfilled"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"
        REFUNDED = "refunded", "Refunded"
        REFUND_REVIEW = "refund_review", "Refunded, credits already used: needs review"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="individual_purchases"
    )
    credits = models.BigIntegerField(help_text="millicredits")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    stripe_checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    checkout_url = models.URLField(max_length=2000, blank=True)
    checkout_expires_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    failure_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "individual_credit_purchases"
        ordering = ["-created_at", "-id"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="individual_purchase_credits_positive"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="individual_purchase_amount_nonnegative"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="individual_purchase_refund_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(status="fulfilled", fulfilled_at__isnull=False) | ~Q(status="fulfilled"),
                name="individual_purchase_fulfilled_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"individual purchase #{self.pk} of {self.user_id} ({self.status})"


class IndividualCreditEntry(models.Model):
    """One change to a user's individual credit total: a purchase, a staff grant, a refund taken
    back, credits moved into an organization, or the opening entry (migration 0028) carrying a
    total from before this ledger. Rows are appended, never updated: together they
    explain the balance's total. ``external_id`` is the change's idempotency key (a Checkout
    Session, a migration's user and org), so a replay never writes a second row."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", "Purchase"
        GRANT = "grant", "Grant"
        REFUND = "refund", "Refund taken back"
        MIGRATED_TO_ORG = "migrated_to_org", "Moved into an organization"
        OPENING = "opening", "Opening balance (before the ledger)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="individual_credit_entries"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    credits = models.BigIntegerField(help_text="millicredits; negative when credits leave")
    total_after = models.BigIntegerField(help_text="the balance's total after this change (millicredits)")
    external_id = models.CharField(max_length=200, unique=True)
    org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="where migrated credits went",
    )  # fmt: skip
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "individual_credit_entries"
        ordering = ["-created_at", "-id"]
        indexes: ClassVar = [models.Index(fields=["user", "created_at"], name="individual_entries_user_time")]
        constraints: ClassVar = [
            models.CheckConstraint(condition=~Q(credits=0), name="individual_entry_credits_nonzero"),
            models.CheckConstraint(
                condition=Q(total_after__gte=0), name="individual_entry_total_nonnegative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.credits} for {self.user_id}"
