"""Who is told about billing events. The e-mail itself is queued by ``orgbilling.mail.queue_email``
(re-exported here), after the transaction that decided to send it commits."""

from django.conf import settings

from organizations.models import Organization, OrganizationMember
from orgbilling.mail import queue_email

__all__ = ["ops_recipients", "org_admin_recipients", "queue_email"]


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
