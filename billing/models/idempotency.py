"""Stored outcomes of money-moving API requests sent with an ``Idempotency-Key``."""

from typing import ClassVar

from django.conf import settings
from django.db import models


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
