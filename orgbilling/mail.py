"""Queueing e-mail after the transaction commits, for both apps.

E-mails go out through the ``send_email`` task (``orgbilling/tasks.py``, registered under its old name,
``billing.tasks.send_email``, so messages already queued still run; retried with backoff)
once the transaction that decided to send them has committed, so a rolled-back decision
mails nobody and a slow mail server never holds a row lock.
"""

import logging

from django.conf import settings
from django.db import transaction

from orgbilling.tasks import send_email

logger = logging.getLogger(__name__)


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
