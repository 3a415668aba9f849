"""Subscription plans and organizations' subscriptions to them (mirrored to Lago)."""

from typing import ClassVar

from django.db import models
from django.db.models import Q

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


# A subscription that holds the org's plan: at most one per org (the services and the gateway's
# quota both read it through this).
LIVE_SUBSCRIPTION_STATUSES = (OrganizationSubscription.Status.PENDING, OrganizationSubscription.Status.ACTIVE)
