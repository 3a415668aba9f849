"""The one retry policy of every Celery task (the tasks live in each app's ``tasks.py``), and the
one task both apps share: ``send_email`` (queued by ``orgbilling.mail.queue_email``).

Every task is acknowledged late (a worker lost mid-task means the task runs again; every task
is idempotent) and retried with exponential backoff and jitter on the errors it names —
transient database errors by default (``orgbilling.db.TRANSIENT_DB_ERRORS``). The longest wait
is capped at ``TASK_RETRY_BACKOFF_MAX_SECONDS`` (the broker's visibility timeout minus the hard
time limit): a retry waiting longer would be redelivered to a second worker and run twice.
"""

from smtplib import SMTPException
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

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


@shared_task(
    name="billing.tasks.send_email",
    # The mail server away, for most of a day (it touches no ledger row: no database retry).
    **retry_policy(
        retry_on=(SMTPException, OSError),
        backoff_seconds=30,
        backoff_max_seconds=settings.TASK_RETRY_BACKOFF_MAX_SECONDS,
        max_retries=100,
    ),
)
def send_email(*, subject: str, body: str, recipients: list[str]) -> int:
    """Send one plain-text e-mail; a mail server that is down is retried for most of a day
    (delays doubling from 30 s up to ``TASK_RETRY_BACKOFF_MAX_SECONDS``, with jitter)."""
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
