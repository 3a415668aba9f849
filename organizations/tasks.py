"""Celery tasks of the organizations app (scheduled in ``orgbilling/settings/tasks.py``)."""

from typing import Any

from celery import shared_task
from django.conf import settings

from organizations import services
from orgbilling.tasks import retry_policy


@shared_task(
    name="organizations.tasks.prune_expired_invitations",
    # Celery's default longest wait (600 s), now capped like every task's.
    **retry_policy(backoff_max_seconds=600),
)
def prune_expired_invitations() -> dict[str, Any]:
    """Daily: forget invitations expired more than ORG_INVITATION_RETENTION_DAYS ago."""
    return {
        "pruned": services.prune_expired_invitations(older_than_days=settings.ORG_INVITATION_RETENTION_DAYS)
    }
