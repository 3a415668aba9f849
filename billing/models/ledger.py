"""The ledger: usage attributions (one row per charge), the reservations held around metered
calls, and an organization's billing history (invoices, payments, purchases, grants)."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models.balances import UserCreditAllocation
from organizations.models import Organization


class ServiceType(models.TextChoices):
    LLM = "llm", "LLM"
    IMAGE = "image", "Image"
    EMBEDDING = "embedding", "Embedding"
    BYOK = "byok", "Bring your own key"
    ADJUSTMENT = "adjustment", "Adjustment"
    OTHER = "other", "Other"


class CreditUsageAttribution(models.Model):
    """The usage ledger: one row per charge, never updated, never deleted.

    A row is appended in the same transaction that raises an allocation's (or an individual
    balance's) ``used_credits``, so every balance can be recomputed from these rows. Corrections
    are new rows, not edits. ``request_id`` is the idempotency key of a deduction: unique per
    organization (per user for individual credits), so a replayed charge finds its first row.
    """

    # The composite indexes below lead with org and with user, so the foreign keys need no
    # index of their own: every index is paid for on the hot path's insert.
    org = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="usage",
        db_index=False,
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="usage", db_index=False
    )
    allocation = models.ForeignKey(
        UserCreditAllocation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="attributions",
    )
    service_type = models.CharField(max_length=32, choices=ServiceType.choices, default=ServiceType.LLM)
    service_name = models.CharField(max_length=200, blank=True, help_text="model or service")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    # The breakdown of the totals above (each is part of input_tokens or of output_tokens; see
    # billing/call_usage.py): what each part was charged at is in request_metadata["price"].
    cached_tokens = models.PositiveIntegerField(
        default=0, db_default=0, help_text="of input_tokens: cache reads"
    )
    cache_write_tokens = models.PositiveIntegerField(
        default=0, db_default=0, help_text="of input_tokens: cache writes"
    )
    audio_input_tokens = models.PositiveIntegerField(
        default=0, db_default=0, help_text="of input_tokens: audio"
    )
    reasoning_tokens = models.PositiveIntegerField(
        default=0, db_default=0, help_text="of output_tokens: hidden reasoning"
    )
    audio_output_tokens = models.PositiveIntegerField(
        default=0, db_default=0, help_text="of output_tokens: audio"
    )
    credits_used = models.BigIntegerField()
    balance_after = models.BigIntegerField(
        help_text="free millicredits left on the allocation (or individual balance) after this charge"
    )
    request_id = models.CharField(max_length=128)
    request_metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)

    class Meta:
        db_table = "credit_usage_attribution"
        ordering = ["-created_at", "-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["org", "request_id"],
                condition=Q(org__isnull=False),
                name="attribution_request_id_unique_per_org",
            ),
            models.UniqueConstraint(
                fields=["user", "request_id"],
                condition=Q(org__isnull=True),
                name="attribution_request_id_unique_per_individual",
            ),
            models.CheckConstraint(condition=Q(credits_used__gte=0), name="attribution_credits_nonnegative"),
            # Organization charges come from an allocation; individual ones never do.
            models.CheckConstraint(
                condition=(Q(org__isnull=True) & Q(allocation__isnull=True))
                | (Q(org__isnull=False) & Q(allocation__isnull=False)),
                name="attribution_allocation_matches_org",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["org", "created_at"], name="attribution_org_created"),
            models.Index(fields=["org", "user", "created_at"], name="attribution_org_user_created"),
            models.Index(fields=["user", "created_at"], name="attribution_user_created"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.credits_used} mc"


class CreditReservation(models.Model):
    """A hold on credits taken before a metered call and settled or released after it.

    While ``held`` its amount sits in the holder's ``reserved_credits``; settling turns (part
    of) it into usage with an attribution row, releasing returns it. Rows change state once.
    """

    class Status(models.TextChoices):
        HELD = "held", "Held"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="reservations"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_reservations"
    )
    allocation = models.ForeignKey(
        UserCreditAllocation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reservations",
    )
    request_id = models.CharField(max_length=128)
    amount = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.HELD)
    credits_charged = models.BigIntegerField(default=0)
    credits_requested = models.BigIntegerField(
        null=True, blank=True, help_text="the cost the settlement asked for (charged may be capped)"
    )
    attribution = models.OneToOneField(
        CreditUsageAttribution,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reservation",
    )
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "credit_reservations"
        ordering = ["-created_at"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["org", "request_id"],
                condition=Q(org__isnull=False),
                name="reservation_request_id_unique_per_org",
            ),
            models.UniqueConstraint(
                fields=["user", "request_id"],
                condition=Q(org__isnull=True),
                name="reservation_request_id_unique_per_individual",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="reservation_amount_nonnegative"),
            models.CheckConstraint(
                condition=(Q(org__isnull=True) & Q(allocation__isnull=True))
                | (Q(org__isnull=False) & Q(allocation__isnull=False)),
                name="reservation_allocation_matches_org",
            ),
            models.CheckConstraint(
                condition=Q(credits_charged__gte=0), name="reservation_charged_nonnegative"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["held", "settled", "released", "expired"]),
                name="reservation_status_valid",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["status", "expires_at"], name="reservation_status_expiry"),
            models.Index(fields=["allocation", "status"], name="reservation_allocation_status"),
        ]

    def __str__(self) -> str:
        return f"hold {self.request_id} ({self.status})"


class OrgBillingHistory(models.Model):
    """Invoices, payments, credit purchases and subscription changes of an organization.

    ``external_id`` is unique so a sync or a replayed webhook never writes a row twice.
    """

    class EventType(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        PAYMENT = "payment", "Payment"
        CREDIT_PURCHASE = "credit_purchase", "Credit purchase"
        CREDIT_GRANT = "credit_grant", "Credit grant"
        REFUND = "refund", "Refund"
        CREDIT_EXPIRY = "credit_expiry", "Credits expired"
        SUBSCRIPTION_CHANGE = "subscription_change", "Subscription change"

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="billing_history")
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    external_id = models.CharField(max_length=200, unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    credits = models.BigIntegerField(null=True, blank=True, help_text="millicredits, when relevant")
    status = models.CharField(max_length=32, blank=True)
    description = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "org_billing_history"
        ordering = ["-occurred_at", "-id"]
        indexes: ClassVar = [models.Index(fields=["org", "occurred_at"], name="billing_history_org_time")]

    def __str__(self) -> str:
        return f"{self.org_id} {self.event_type} {self.external_id}"
