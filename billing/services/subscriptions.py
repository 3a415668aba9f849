"""Subscription writes that need no external billing backend (the ``local`` backend)."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from billing.errors import OrganizationNotFound
from billing.models import OrganizationSubscription, OrgBillingHistory, Plan
from billing.services.audit import record_audit_event
from organizations.models import Organization, User
from orgbilling.errors import Conflict, NotFound

BILLING_PERIOD = timedelta(days=30)


def start_local_subscription(
    *, org_id: str, plan_code: str, actor: User | None = None, actor_label: str = ""
) -> OrganizationSubscription:
    """Start an active subscription on ``plan_code`` with no external backend involved."""
    plan = Plan.objects.filter(plan_code=plan_code, is_active=True).first()
    if plan is None:
        raise NotFound("Unknown plan.", details={"plan_code": plan_code})
    if not Organization.objects.filter(pk=org_id).exists():
        raise OrganizationNotFound(details={"org_id": org_id})
    now = timezone.now()
    with transaction.atomic():
        if OrganizationSubscription.objects.filter(org_id=org_id, status__in=["pending", "active"]).exists():
            raise Conflict("The organization already has a subscription.", details={"org_id": org_id})
        subscription = OrganizationSubscription.objects.create(
            org_id=org_id,
            plan=plan,
            status=OrganizationSubscription.Status.ACTIVE,
            current_period_start=now,
            current_period_end=now + BILLING_PERIOD,
        )
        OrgBillingHistory.objects.create(
            org_id=org_id,
            event_type=OrgBillingHistory.EventType.SUBSCRIPTION_CHANGE,
            external_id=f"subscription-{subscription.pk}-started",
            amount=plan.monthly_price,
            status="active",
            description=f"Subscribed to {plan.name}",
            occurred_at=now,
        )
        record_audit_event(
            action="subscription.created",
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="subscription",
            target_id=subscription.pk,
            metadata={"plan_code": plan_code},
        )
    return subscription
