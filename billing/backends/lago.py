"""The ``lago`` subscription backend, and every other call we make to Lago, through
``lago-python-client``. Chosen by ``SUBSCRIPTION_BACKEND=lago`` with ``LAGO_API_URL``/``LAGO_API_KEY``.

One organization is one Lago customer (external id = org id); our subscription row's
``lago_external_id`` is the Lago subscription's ``external_id``, so creating it again (a retry)
returns the same subscription and a plan change is the same call with another ``plan_code``.
A refusal (HTTP 4xx other than 429) leaves this module as ``BillingBackendRejected`` (permanent:
the same call cannot succeed); every other client error (5xx, 429, timeout, connection refused,
malformed answer) as ``BillingBackendUnavailable`` (try again later). Nothing here holds a
database lock while calling out.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.customer import Customer
from lago_python_client.models.plan import Plan as LagoPlan
from lago_python_client.models.subscription import Subscription as LagoSubscription
from lago_python_client.models.subscription import SubscriptionResponse

from billing.backends.base import BackendSubscription
from billing.errors import BillingBackendRejected, BillingBackendUnavailable
from billing.models import OrganizationSubscription, Plan
from organizations.models import Organization

logger = logging.getLogger(__name__)

NOT_FOUND = 404
TOO_MANY_REQUESTS = 429


class LagoNotFound(Exception):
    """Lago answered 404 (only raised where a caller asked to see it)."""


def lago_configured() -> bool:
    return bool(settings.LAGO_API_URL and settings.LAGO_API_KEY)


def lago_client() -> Any:
    """The configured client. Typed ``Any``: the library's pydantic-v1 models and generic mixins
    do not type-check (every optional field reads as required); this module is the boundary."""
    if not lago_configured():
        logger.error("Lago is selected but LAGO_API_URL or LAGO_API_KEY is not set")
        raise BillingBackendUnavailable(
            "Lago is not configured.", details={"provider": "lago", "reason": "not_configured"}
        )
    url = settings.LAGO_API_URL if settings.LAGO_API_URL.endswith("/") else settings.LAGO_API_URL + "/"
    # No sleeping on 429 inside a request: the caller gets 503 and the retry task tries later.
    return Client(api_key=settings.LAGO_API_KEY, api_url=url, retry_on_rate_limit=False)


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(settings.LAGO_TIMEOUT_SECONDS)


@contextmanager
def lago_errors(action: str, *, not_found_ok: bool = False) -> Iterator[None]:
    """Translate the client's errors into ``BillingBackendUnavailable`` (or ``LagoNotFound``)."""
    try:
        yield
    except LagoApiError as exc:
        if not_found_ok and exc.status_code == NOT_FOUND:
            raise LagoNotFound(action) from exc
        status = exc.status_code
        if isinstance(status, int) and 400 <= status < 500 and status != TOO_MANY_REQUESTS:
            logger.error("Lago refused %s: HTTP %s %s", action, status, exc.detail)
            raise BillingBackendRejected(
                details={"provider": "lago", "action": action, "status": status}
            ) from exc
        logger.warning("Lago %s failed: HTTP %s %s", action, exc.status_code, exc.detail)
        raise BillingBackendUnavailable(
            details={"provider": "lago", "action": action, "status": exc.status_code}
        ) from exc
    except httpx.HTTPError as exc:  # timeouts, refused connections, protocol errors
        logger.warning("Lago %s failed: %s", action, exc.__class__.__name__)
        raise BillingBackendUnavailable(
            details={"provider": "lago", "action": action, "error": exc.__class__.__name__}
        ) from exc
    except ValueError as exc:  # an answer the client's models refuse (pydantic, typeguard)
        logger.warning("Lago %s returned a malformed answer: %s", action, exc)
        raise BillingBackendUnavailable(
            details={"provider": "lago", "action": action, "error": "malformed_response"}
        ) from exc


def lago_time(value: Any) -> datetime | None:
    """A Lago timestamp (ISO 8601 text) as an aware datetime; one without an offset is UTC (how
    Lago writes them); empty or unparseable → None."""
    parsed = parse_datetime(str(value)) if value else None
    return parsed.replace(tzinfo=UTC) if parsed is not None and timezone.is_naive(parsed) else parsed


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
            timeout=_timeout(),
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
                timeout=_timeout(),
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
                self.client.subscriptions.destroy(subscription.lago_external_id, timeout=_timeout())
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
                client.plans.update(body, plan.plan_code, timeout=_timeout())
            done.append((plan.plan_code, "updated"))
        except LagoNotFound:
            with lago_errors("plan create"):
                client.plans.create(body, timeout=_timeout())
            done.append((plan.plan_code, "created"))
    return done


def fetch_lago_invoices(client: Any, *, org_id: str) -> Iterator[dict[str, Any]]:
    """Every invoice of the organization's Lago customer, page by page (as plain dicts).

    ``invoices.find_all`` with ``external_customer_id``: the customer-scoped invoice client of
    lago-python-client sends no Authorization header."""
    page: int | None = 1
    while page:
        with lago_errors("invoice list"):
            answer = client.invoices.find_all(
                {
                    "external_customer_id": org_id,
                    "per_page": settings.LAGO_INVOICE_PAGE_SIZE,
                    "page": page,
                },
                timeout=_timeout(),
            )
        for invoice in answer["invoices"]:
            yield invoice.dict()
        meta = answer.get("meta") or {}
        next_page = meta.get("next_page")
        page = int(next_page) if next_page and int(next_page) > page else None


def fetch_webhook_public_key() -> bytes:
    """Lago's RSA public key (PEM) that signs ``jwt`` webhooks."""
    client = lago_client()
    with lago_errors("webhook public key"):
        key: bytes = client.webhooks.public_key()
    return key


def cents_to_decimal(cents: int | None) -> Decimal | None:
    return None if cents is None else (Decimal(cents) / 100).quantize(Decimal("0.01"))
