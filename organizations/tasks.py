"""Celery tasks of the organizations app (scheduled in ``orgbilling/settings/tasks.py``)."""

from typing import Any

from celery import shared_task
from django.conf import settings

from organizations import invitations
from orgbilling.db import TRANSIENT_DB_ERRORS


@shared_task(
    name="organizations.tasks.prune_expired_invitations",
    autoretry_for=TRANSIENT_DB_ERRORS,
    retry_backoff=5,
    retry_jitter=True,
    max_retries=5,
    acks_late=True,
)
def prune_expired_invitations() -> dict[str, Any]:
    """Daily: forget invitations expired more than ORG_INVITATION_RETENTION_DAYS ago."""
    return {
        "pruned": invitations.prune_expired_invitations(
            older_than_days=settings.ORG_INVITATION_RETENTION_DAYS
        )
    }
