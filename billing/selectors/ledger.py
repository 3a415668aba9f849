"""Reads of pools, allocations and subscriptions for the API (writes live in services)."""

from django.db.models import Exists, OuterRef, Q, QuerySet

from billing.errors import SubscriptionNotFound
from billing.models import Department, OrganizationCreditPool, OrganizationSubscription, UserCreditAllocation
from billing.models.subscriptions import LIVE_SUBSCRIPTION_STATUSES as LIVE
from organizations.models import Organization, User


def pool_of(*, org: Organization) -> OrganizationCreditPool:
    """The org's pool (an empty, unsaved one for an org created without it)."""
    return OrganizationCreditPool.objects.filter(org=org).first() or OrganizationCreditPool(org=org)


def active_allocation(*, org: Organization, user: User) -> UserCreditAllocation | None:
    return (
        UserCreditAllocation.objects.select_related("user", "allocated_by")
        .filter(org=org, user=user, is_active=True)
        .first()
    )


def allocations_visible_to(
    *, org: Organization, user: User, is_admin: bool
) -> QuerySet[UserCreditAllocation]:
    """Every allocation of the org for its admins; a member sees their own, and a department
    manager also those of the departments they manage."""
    allocations = (
        UserCreditAllocation.objects.select_related("user", "allocated_by").filter(org=org).order_by("id")
    )
    if is_admin:
        return allocations
    managed = Department.managers.through.objects.filter(
        department_id=OuterRef("department_id"), user_id=user.pk
    )
    return allocations.filter(Q(user=user) | Q(Exists(managed)))


def live_subscription(*, org: Organization) -> OrganizationSubscription:
    subscription = (
        OrganizationSubscription.objects.select_related("plan")
        .filter(org=org, status__in=LIVE)
        .order_by("-created_at")
        .first()
    )
    if subscription is None:
        raise SubscriptionNotFound(details={"org_id": org.id})
    return subscription
