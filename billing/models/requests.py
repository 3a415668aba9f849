"""Members' requests for more credits, and what became of each."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models.balances import Department, UserCreditAllocation
from organizations.models import Organization


class CreditRequest(models.Model):
    """A member asks their organization for ``credits`` more millicredits.

    ``pending`` → ``approved`` (the requester's allocation was raised by ``credits``: the raise
    is ``allocation``) | ``declined`` | ``cancelled`` (by the requester). The move is one-way,
    made under this row's lock (``billing.ledger.locks.lock_credit_request``). A member has at
    most one pending request per organization (a partial unique index). ``department`` is the
    department of the requester's active allocation when they asked (who is told, which
    manager sees it); the approval raises the allocation they hold when it is approved.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        CANCELLED = "cancelled", "Cancelled"

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="credit_requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_requests"
    )
    credits = models.BigIntegerField(help_text="millicredits")
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    allocation = models.ForeignKey(
        UserCreditAllocation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "credit_requests"
        ordering = ["-created_at", "-id"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="credit_requests_credits_positive"),
            models.UniqueConstraint(
                fields=["org", "requester"],
                condition=Q(status="pending"),
                name="credit_requests_one_pending_per_member",
            ),
            # Decided exactly when no longer pending; approved exactly when it raised an allocation.
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True)
                | (~Q(status="pending") & Q(decided_at__isnull=False)),
                name="credit_requests_decided_when_not_pending",
            ),
            models.CheckConstraint(
                condition=Q(status="approved", allocation__isnull=False)
                | (~Q(status="approved") & Q(allocation__isnull=True)),
                name="credit_requests_allocation_when_approved",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["org", "status", "-created_at"], name="credit_requests_org_status"),
        ]

    def __str__(self) -> str:
        return f"credit request #{self.pk} of {self.requester_id}@{self.org_id} ({self.status})"
