"""Who is told about billing events, and queueing the e-mail after the transaction commits.

E-mails go out through the ``billing.tasks.send_email`` task (retried with backoff) once the
transaction that decided to send them has committed, so a rolled-back decision mails nobody
and a slow mail server never holds a row lock.
"""

import logging

from django.conf import settings
from django.db import transaction

from organizations.models import Organization, OrganizationMember

logger = logging.getLogger(__name__)


def org_admin_recipients(org_id: str) -> list[str]:
    """The e-mail addresses of an organization's active admins and its billing address."""
    emails = set(
        OrganizationMember.objects.filter(
            org_id=org_id, role=OrganizationMember.Role.ADMIN, status=OrganizationMember.Status.ACTIVE
        )
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    billing_email = Organization.objects.filter(pk=org_id).values_list("billing_email", flat=True).first()
    if billing_email:
        emails.add(billing_email)
    return sorted(emails)


def ops_recipients() -> list[str]:
    """Operations: ``ADMINS`` (``DJANGO_ADMINS``) and ``OPS_ALERT_EMAILS``."""
    emails = {email for _name, email in settings.ADMINS} | set(settings.OPS_ALERT_EMAILS)
    return sorted(email for email in emails if email)


def queue_email(*, subject: str, body: str, recipients: list[str]) -> bool:
    """Send an e-mail through the task queue once the current transaction commits.
    Returns False (and logs) when there is no one to send it to."""
    if not recipients:
        logger.warning("No recipient for e-mail %r; not sent", subject)
        return False
    from billing.tasks import send_email  # the tasks module imports the services

    subject = f"{settings.EMAIL_SUBJECT_PREFIX}{subject}"
    transaction.on_commit(
        lambda: send_email.delay(subject=subject, body=body, recipients=recipients), robust=True
    )
    return True
