"""The audit trail of administrative actions."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from organizations.models import Organization


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
