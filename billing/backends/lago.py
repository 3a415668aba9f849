"""The ``lago`` subscription backend and the plan sync, through the client wrapper
``billing.clients.lago``. Chosen by ``SUBSCRIPTION_BACKEND=lago`` with ``LAGO_API_URL``/``LAGO_API_KEY``.

One organization is one Lago customer (external id = org id); our subscription row's
``lago_external_id`` is the Lago subscription's ``external_id``, so creating it again (a retry)
returns the same subscription and a plan change is the same call with another ``plan_code``.
Lago's errors arrive as ``BillingBackendRejected`` / ``BillingBackendUnavailable`` (see the
client wrapper). Nothing here holds a database lock while calling out.
"""

import logging
from typing import Any

from django.conf import settings
from lago_python_client.models.customer import Customer
from lago_python_client.models.plan import Plan as LagoPlan
from lago_python_client.models.subscription import Subscription as LagoSubscription
from lago_python_client.models.subscription import SubscriptionResponse

from billing.backends.base import BackendSubscription
from billing.clients.lago import LagoNotFound, lago_client, lago_errors, lago_time, lago_timeout
from billing.errors import BillingBackendUnavailable
from billing.models import OrganizationSubscription, Plan
from organizations.models import Organization

logger = logging.getLogger(__name__)


def upsert_lago_customer(client: Any, org: Organization) -> str:
    """Create or update the organization's Lago customer; remember its Lago id. Returns it."""
    with lago_errors("customer upsert"):
        customer = client.customers.create(
            Customer.parse_obj(
                {
                    "external_id": org.id,
                    "name": org.org_name,
                    "email": org.billing_email or None,
                    "currency": "USD",
                }
            ),
            timeout=lago_timeout(),
        )
    if customer is None:
        raise BillingBackendUnavailable(details={"provider": "lago", "action": "customer upsert"})
    if org.lago_customer_id != customer.lago_id:
        # A reference to the external record, not a balance: kept current on every upsert.
        Organization.objects.filter(pk=org.pk).update(lago_customer_id=customer.lago_id)
        org.lago_customer_id = customer.lago_id
    return str(customer.lago_id)


def _as_backend(sub: SubscriptionResponse) -> BackendSubscription:
    return BackendSubscription(
        external_id=sub.lago_id,
        period_start=lago_time(sub.current_billing_period_started_at) or lago_time(sub.started_at),
        period_end=lago_time(sub.current_billing_period_ending_at),
    )


class LagoSubscriptionBackend:
    """Subscriptions kept in Lago (which bills them); our rows mirror them."""

    name = "lago"

    def __init__(self) -> None:
        self.client = lago_client()

    def _subscribe(self, *, org_id: str, plan: Plan, external_id: str, action: str) -> BackendSubscription:
        with lago_errors(action):
            sub = self.client.subscriptions.create(
                LagoSubscription.parse_obj(
                    {
                        "external_customer_id": org_id,
                        "plan_code": plan.plan_code,
                        "external_id": external_id,
                        "name": plan.name,
                        "billing_time": "calendar",
                    }
                ),
                timeout=lago_timeout(),
            )
        if sub is None:
            raise BillingBackendUnavailable(details={"provider": "lago", "action": action})
        return _as_backend(sub)

    def start(self, *, org: Organization, plan: Plan, external_id: str) -> BackendSubscription:
        upsert_lago_customer(self.client, org)
        return self._subscribe(
            org_id=org.id, plan=plan, external_id=external_id, action="subscription create"
        )

    def change_plan(self, *, subscription: OrganizationSubscription, plan: Plan) -> BackendSubscription:
        # Lago: the same external_id with another plan_code is an upgrade (now) or a downgrade
        # (at the end of the period).
        changed = self._subscribe(
            org_id=subscription.org_id,
            plan=plan,
            external_id=subscription.lago_external_id,
            action="subscription plan change",
        )
        return BackendSubscription(
            external_id=changed.external_id,
            period_start=changed.period_start or subscription.current_period_start,
            period_end=changed.period_end or subscription.current_period_end,
        )

    def cancel(self, *, subscription: OrganizationSubscription) -> None:
        try:
            with lago_errors("subscription terminate", not_found_ok=True):
                self.client.subscriptions.destroy(subscription.lago_external_id, timeout=lago_timeout())
        except LagoNotFound:
            # Already terminated in Lago (or never there): cancelling here is what is left to do.
            logger.info("Lago has no live subscription %s; cancelling locally", subscription.lago_external_id)


def upsert_lago_plans() -> list[tuple[str, str]]:
    """Mirror every ``Plan`` into Lago (update by code, create when missing).
    Returns ``(plan_code, "updated" | "created")`` per plan."""
    client = lago_client()
    done: list[tuple[str, str]] = []
    for plan in Plan.objects.order_by("plan_code"):
        calls = plan.monthly_api_calls or "unlimited"
        body = LagoPlan.parse_obj(
            {
                "name": plan.name,
                "code": plan.plan_code,
                "interval": settings.LAGO_PLAN_INTERVAL,
                "amount_cents": int((plan.monthly_price * 100).to_integral_value()),
                "amount_currency": plan.currency,
                "pay_in_advance": True,
                "description": f"{plan.rate_limit_tier} tier, {calls} API calls a month",
            }
        )
        try:
            with lago_errors("plan update", not_found_ok=True):
                client.plans.update(body, plan.plan_code, timeout=lago_timeout())
            done.append((plan.plan_code, "updated"))
        except LagoNotFound:
            with lago_errors("plan create"):
                client.plans.create(body, timeout=lago_timeout())
            done.append((plan.plan_code, "created"))
    return done
