"""Reads of credit requests, scoped to what the caller may see."""

from django.db.models import Q, QuerySet

from billing.errors import CreditRequestNotFound
from billing.models import CreditRequest
from billing.selectors.departments import managed_department_ids
from organizations.models import Organization, User


def credit_requests_visible_to(*, org: Organization, user: User, is_admin: bool) -> QuerySet[CreditRequest]:
    """Every request of the org for its admins; a department manager sees those of the members
    of the departments they manage (the department of the requester's allocation when they
    asked) and their own; a member sees their own. Newest first."""
    requests = CreditRequest.objects.select_related("requester", "decided_by").filter(org=org)
    if not is_admin:
        managed = managed_department_ids(user=user, org_id=org.id)
        requests = requests.filter(Q(requester=user) | Q(department_id__in=managed))
    return requests.order_by("-created_at", "-id")


def credit_request_visible_to(
    *, org: Organization, user: User, is_admin: bool, request_id: int
) -> CreditRequest:
    """One request the caller may see, or 404 ``credit_request_not_found``."""
    request = credit_requests_visible_to(org=org, user=user, is_admin=is_admin).filter(pk=request_id).first()
    if request is None:
        raise CreditRequestNotFound(details={"org_id": org.id, "request_id": request_id})
    return request
