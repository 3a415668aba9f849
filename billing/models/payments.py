"""Money in: credit purchases (Stripe Checkout or auto top-up) and each organization's auto
top-up settings."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from organizations.models import Organization


class CreditPurchase(models.Model):
    """Credits bought with money (Stripe). Fulfilled, i.e. added to the pool, exactly once.

    ``pending`` (checkout open) → ``fulfilled`` (paid, credits added) | ``failed`` | ``canceled``
    (checkout expired). A refund of a fulfilled purchase takes its credits back when the pool
    still has them unallocated (``refunded``); otherwise ops decide (``refund_review``).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        FULFILLED = "fulfilled", "Fulfilled"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"
        REFUNDED = "refunded", "Refunded"
        REFUND_REVIEW = "refund_review", "Refunded, credits already used: needs review"

    class Origin(models.TextChoices):
        CHECKOUT = "checkout", "Stripe Checkout"
        AUTO_TOPUP = "auto_topup", "Auto top-up (saved card, off-session)"

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="credit_purchases")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.CHECKOUT)
    purchased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
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
    refunded_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "credit_purchases"
        ordering = ["-created_at"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="purchase_credits_positive"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="purchase_amount_nonnegative"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="purchase_refund_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["pending", "fulfilled", "failed", "canceled", "refunded", "refund_review"]
                ),
                name="purchase_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status="fulfilled", fulfilled_at__isnull=False) | ~Q(status="fulfilled"),
                name="purchase_fulfilled_has_time",
            ),
            # One auto top-up in flight per organization, whatever races the periodic task has.
            models.UniqueConstraint(
                fields=["org"],
                condition=Q(origin="auto_topup", status="pending"),
                name="purchase_one_auto_topup_in_flight",
            ),
        ]

    def __str__(self) -> str:
        return f"purchase #{self.pk} {self.org_id} ({self.status})"


class AutoTopUpSettings(models.Model):
    """An organization's auto top-up: when the pool's available credits fall below
    ``threshold_credits``, ``amount_credits`` are bought off-session with the saved card, for at
    most ``monthly_cap_usd`` a calendar month (UTC). Turned off after
    ``AUTO_TOPUP_MAX_CONSECUTIVE_FAILURES`` payment failures in a row. Written only by
    ``billing.payments.auto_topup``.
    """

    org = models.OneToOneField(
        Organization, primary_key=True, on_delete=models.PROTECT, related_name="auto_topup"
    )
    enabled = models.BooleanField(default=False)
    threshold_credits = models.BigIntegerField(help_text="millicredits; top up below this many available")
    amount_credits = models.BigIntegerField(help_text="millicredits bought per top-up")
    monthly_cap_usd = models.DecimalField(max_digits=12, decimal_places=2)
    save_card_at_checkout = models.BooleanField(
        default=False, help_text="Card purchases through Checkout save the card for auto top-up."
    )
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=500, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "auto_topup_settings"
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(threshold_credits__gte=0) & Q(amount_credits__gt=0) & Q(monthly_cap_usd__gte=0),
                name="auto_topup_amounts_valid",
            ),
            models.CheckConstraint(
                condition=Q(enabled=False) | ~Q(stripe_payment_method_id=""),
                name="auto_topup_enabled_has_card",
            ),
        ]

    def __str__(self) -> str:
        return f"auto top-up of {self.org_id} ({'on' if self.enabled else 'off'})"
