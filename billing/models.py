"""Billing data: plans, subscriptions, the credit pool, allocations and the ledger tables.

All credit columns are integer millicredits (``billing.money``). Single-row invariants are
database CHECK constraints; cross-row invariants (pool totals equal the sums of their rows) are
checked by ``billing.selectors.reconciliation`` and the ``reconcile_credits`` command.
Balances are written only by ``billing.services``.
"""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KeyTransform

from organizations.models import Organization


class Plan(models.Model):
    """A subscription plan (mirrored to Lago by ``plan_code``)."""

    plan_code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    rate_limit_tier = models.CharField(max_length=32, default="standard")
    monthly_api_calls = models.PositiveIntegerField(help_text="API calls per month; 0 = unlimited")
    is_active = models.BooleanField(default=True)

    class Meta:
        db_table = "billing_plans"
        ordering = ["monthly_price"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(monthly_price__gte=0), name="plans_price_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (${self.monthly_price}/mo)"


class OrganizationSubscription(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        CANCELED = "canceled", "Canceled"
        TERMINATED = "terminated", "Terminated"
        FAILED = "failed", "Failed"  # the backend refused to start it (never live)

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    lago_subscription_id = models.CharField(max_length=128, blank=True)
    lago_external_id = models.CharField(max_length=128, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    initial_credits = models.BigIntegerField(
        null=True, blank=True, help_text="millicredits granted once the subscription is live"
    )
    activation_attempts = models.PositiveIntegerField(
        default=0, help_text="calls to the billing backend to start it (retried while pending)"
    )
    last_backend_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "organization_subscriptions"
        ordering = ["-created_at"]
        constraints: ClassVar = [
            # An organization has at most one live (pending or active) subscription.
            models.UniqueConstraint(
                fields=["org"],
                condition=Q(status__in=["pending", "active"]),
                name="org_subscriptions_one_live_per_org",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "active", "canceled", "terminated", "failed"]),
                name="org_subscriptions_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.org_id}: {self.plan.plan_code} ({self.status})"


class OrganizationCreditPool(models.Model):
    """An organization's shared credits.

    ``total_credits`` is everything ever put in; ``allocated_credits`` is what is committed to
    allocations (the sum of all allocations' ``allocated_credits``; a revoked allocation keeps
    only what it used); ``used_credits`` is what was consumed. Available = total − allocated.
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


class UserCreditAllocation(models.Model):
    """A member's share of the pool. At most one active allocation per (org, user).

    ``used + reserved ≤ allocated`` always; free = allocated − used − reserved.
    """

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="allocations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_allocations"
    )
    allocated_credits = models.BigIntegerField(default=0)
    used_credits = models.BigIntegerField(default=0)
    reserved_credits = models.BigIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
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
            # A revoked allocation keeps exactly what it consumed and holds nothing.
            models.CheckConstraint(
                condition=Q(is_active=True)
                | (Q(allocated_credits=F("used_credits")) & Q(reserved_credits=0)),
                name="allocations_inactive_settled",
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["user", "is_active"], name="allocations_user_active")]

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


class WebhookEvent(models.Model):
    """A webhook received from Lago or Stripe, stored verbatim before it is processed.

    Unique per (provider, event id), so a redelivered or concurrently delivered event is one
    row, processed once: processing locks the row and skips it once ``processed``/``ignored``.
    """

    class Provider(models.TextChoices):
        LAGO = "lago", "Lago"
        STRIPE = "stripe", "Stripe"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (type not handled)"
        FAILED = "failed", "Failed"

    provider = models.CharField(max_length=16, choices=Provider.choices)
    event_id = models.CharField(max_length=255, help_text="Stripe's event id; Lago's X-Lago-Unique-Key")
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "webhook_events"
        ordering = ["-received_at", "-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="webhook_events_unique_per_provider"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["received", "processed", "ignored", "failed"]),
                name="webhook_events_status_valid",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["status", "received_at"], name="webhook_events_status_time"),
            # Stripe events by the payment intent they are about: looked up while a purchase row
            # is locked (billing.payments.purchases._stored_stripe_events), so never a scan.
            models.Index(
                KeyTransform("payment_intent", KeyTransform("object", KeyTransform("data", "payload"))),
                "provider",
                name="webhook_events_payment_intent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id} ({self.status})"


class AuditEvent(models.Model):
    """Who did what to whom, when: appended by every administrative service, never edited."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True, help_text="'system', a command, …")
    org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=128, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(
        max_length=128, blank=True, default="", help_text="X-Request-Id of the request that wrote it"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "audit_events"
        ordering = ["-created_at", "-id"]
        indexes: ClassVar = [
            models.Index(fields=["org", "created_at"], name="audit_org_created"),
            models.Index(fields=["action", "created_at"], name="audit_action_created"),
            models.Index(fields=["request_id"], name="audit_request_id", condition=~Q(request_id="")),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id or self.actor_label}"


class IdempotencyRecord(models.Model):
    """The stored outcome of a money-moving API request sent with an ``Idempotency-Key``.

    A retry with the same key and body replays ``response_body``; the same key with another
    body is refused. Keys are scoped to the caller.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "api_idempotency_records"
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_user_key"),
        ]
        indexes: ClassVar = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class ModelPrice(models.Model):
    """What a model costs, in credits (1 credit = $0.01). Edited in the admin; a change applies
    to calls priced after it, and every charge stores the price it used."""

    model = models.CharField(max_length=200, unique=True, help_text="the name clients send, e.g. gpt-4o-mini")
    input_credits_per_million = models.DecimalField(
        max_digits=12, decimal_places=3, help_text="credits per 1M input (prompt) tokens"
    )
    output_credits_per_million = models.DecimalField(
        max_digits=12, decimal_places=3, help_text="credits per 1M output (completion) tokens"
    )
    image_credits = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        default=0,
        help_text="credits per generated image (default size/quality)",
    )
    image_prices = models.JSONField(
        default=dict,
        blank=True,
        help_text='credits per image by "size/quality", e.g. {"1024x1024/hd": 8.0}; else image_credits',
    )
    max_output_tokens = models.PositiveIntegerField(
        default=4096, help_text="output cap used to price the worst case when a call sets no max_tokens"
    )
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "model_prices"
        ordering = ["model"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(input_credits_per_million__gte=0)
                & Q(output_credits_per_million__gte=0)
                & Q(image_credits__gte=0),
                name="model_prices_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return self.model


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


from billing.usage_models import (  # noqa: E402,F401
    ReconciliationRun,
    UsageAlert,
    UsageDailyRollup,
    UsageRollupDay,
)
