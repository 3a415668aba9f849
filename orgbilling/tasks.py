"""The one retry policy of every Celery task (the tasks live in each app's ``tasks.py``).

Every task is acknowledged late (a worker lost mid-task means the task runs again; every task
is idempotent) and retried with exponential backoff and jitter on the errors it names —
transient database errors by default (``orgbilling.db.TRANSIENT_DB_ERRORS``). The longest wait
is capped at ``TASK_RETRY_BACKOFF_MAX_SECONDS`` (the broker's visibility timeout minus the hard
time limit): a retry waiting longer would be redelivered to a second worker and run twice.
"""

from typing import Any

from django.conf import settings

from orgbilling.db import TRANSIENT_DB_ERRORS


def retry_policy(
    *,
    retry_on: tuple[type[BaseException], ...] = TRANSIENT_DB_ERRORS,
    backoff_seconds: int = 5,
    backoff_max_seconds: int = 300,
    max_retries: int = 5,
) -> dict[str, Any]:
    """The ``shared_task`` options: ``@shared_task(name=..., **retry_policy(...))``."""
    return {
        "autoretry_for": retry_on,
        "retry_backoff": backoff_seconds,
        "retry_backoff_max": min(backoff_max_seconds, settings.TASK_RETRY_BACKOFF_MAX_SECONDS),
        "retry_jitter": True,
        "max_retries": max_retries,
        "acks_late": True,
    }


# The ledger and housekeeping tasks: a dropped connection, a deadlock victim, a lock timeout.
RETRYING = retry_policy()
