"""Queueing e-mail after the transaction commits, for both apps.

E-mails go out through the ``send_email`` task (registered under its old name,
``billing.tasks.send_email``, so messages already queued still run; retried with backoff)
once the transaction that decided to send them has committed, so a rolled-back decision
mails nobody and a slow mail server never holds a row lock.
"""

import logging
from smtplib import SMTPException

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from orgbilling.tasks import retry_policy

logger = logging.getLogger(__name__)


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


def queue_email(*, subject: str, body: str, recipients: list[str]) -> bool:
    """Send an e-mail through the task queue once the current transaction commits.
    Returns False (and logs) when there is no one to send it to."""
    if not recipients:
        logger.warning("No recipient for e-mail %r; not sent", subject)
        return False
    subject = f"{settings.EMAIL_SUBJECT_PREFIX}{subject}"
    transaction.on_commit(
        lambda: send_email.delay(subject=subject, body=body, recipients=recipients), robust=True
    )
    return True
