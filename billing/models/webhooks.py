"""Webhooks from Lago and Stripe, stored verbatim before they are processed."""

from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform


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
