"""The ``SubscriptionBackend`` interface and the ``local`` backend (no external service).

A backend is called outside any database transaction; it raises ``BillingBackendUnavailable``
when the external service is down or refuses, and nothing else. ``start`` is idempotent on
``external_id`` (our id of the subscription), so a retry after a lost answer never subscribes twice.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from billing.models import OrganizationSubscription, Plan
from organizations.models import Organization

BILLING_PERIOD = timedelta(days=30)


@dataclass(frozen=True)
class BackendSubscription:
    external_id: str
    period_start: datetime | None
    period_end: datetime | None


class SubscriptionBackend(Protocol):
    name: str

    def start(self, *, org: Organization, plan: Plan, external_id: str) -> BackendSubscription: ...

    def change_plan(self, *, subscription: OrganizationSubscription, plan: Plan) -> BackendSubscription: ...

    def cancel(self, *, subscription: OrganizationSubscription) -> None: ...


class LocalSubscriptionBackend:
    """Keeps subscriptions in our database only: the dev and test default."""

    name = "local"

    def start(self, *, org: Organization, plan: Plan, external_id: str) -> BackendSubscription:
        now = timezone.now()
        return BackendSubscription(f"local_sub_{uuid.uuid4().hex}", now, now + BILLING_PERIOD)

    def change_plan(self, *, subscription: OrganizationSubscription, plan: Plan) -> BackendSubscription:
        return BackendSubscription(
            subscription.lago_subscription_id,
            subscription.current_period_start,
            subscription.current_period_end,
        )

    def cancel(self, *, subscription: OrganizationSubscription) -> None:
        return None


BACKENDS = {
    "local": "billing.backends.base.LocalSubscriptionBackend",
    "lago": "billing.backends.lago.LagoSubscriptionBackend",
}


def get_subscription_backend() -> SubscriptionBackend:
    path = BACKENDS.get(settings.SUBSCRIPTION_BACKEND, settings.SUBSCRIPTION_BACKEND)
    backend: SubscriptionBackend = import_string(path)()
    return backend
