"""Celery tasks of subscriptions and invoices: thin over the services, idempotent, retried.

Scheduled by beat (``orgbilling/settings/tasks.py``) under exactly these names:
``billing.payments.tasks.retry_pending_subscriptions``,
``billing.payments.tasks.sync_lago_invoices`` and ``billing.payments.tasks.run_auto_topups``.
"""

import logging
from typing import Any

from celery import shared_task

from billing.clients.lago import lago_configured
from billing.errors import BillingBackendUnavailable
from billing.payments.auto_topup import run_auto_topups as run_auto_topups_service
from billing.payments.lago_events import orgs_to_sync
from billing.payments.lago_events import sync_lago_invoices as sync_invoices_service
from billing.services.subscriptions import retry_pending_subscriptions as retry_pending_service
from orgbilling.db import TRANSIENT_DB_ERRORS
from orgbilling.tasks import retry_policy

logger = logging.getLogger(__name__)

# The database briefly away, or Lago entirely down: try again with exponential backoff.
_RETRYING_WITH_LAGO = retry_policy(
    retry_on=(*TRANSIENT_DB_ERRORS, BillingBackendUnavailable), backoff_seconds=30, backoff_max_seconds=600
)


@shared_task(name="billing.payments.tasks.retry_pending_subscriptions", **_RETRYING_WITH_LAGO)
def retry_pending_subscriptions(older_than_seconds: int | None = None) -> dict[str, list[int]]:
    """Start at the backend every subscription a failed call left ``pending``. A row that fails
    again stays pending for the next run (no task retry: the next beat run is the retry)."""
    outcome = retry_pending_service(older_than_seconds=older_than_seconds)
    if outcome.still_pending:
        logger.warning("subscriptions still pending after retry: %s", outcome.still_pending)
    if outcome.failed:
        logger.error("subscriptions that failed in retry: %s", outcome.failed)
    return {"activated": outcome.activated, "still_pending": outcome.still_pending, "failed": outcome.failed}


@shared_task(name="billing.payments.tasks.sync_lago_invoices", **_RETRYING_WITH_LAGO)
def sync_lago_invoices(org_id: str | None = None) -> dict[str, Any]:
    """Mirror Lago's invoices (every page) into the billing history; idempotent. Skipped (not
    retried) while Lago is not configured, e.g. with the local subscription backend."""
    if not lago_configured():
        logger.info("sync_lago_invoices skipped: LAGO_API_URL/LAGO_API_KEY not set")
        return {"skipped": "lago_not_configured"}
    result = sync_invoices_service(org_ids=orgs_to_sync(org_id))
    if result.failed_orgs:
        logger.warning("invoice sync incomplete for %s", result.failed_orgs)
    return {
        "organizations": result.organizations,
        "invoices_seen": result.invoices_seen,
        "invoices_created": result.invoices_created,
        "payments_created": result.payments_created,
        "failed_orgs": result.failed_orgs,
        "refused_invoices": result.refused_invoices,
    }


@shared_task(name="billing.payments.tasks.run_auto_topups", **_RETRYING_WITH_LAGO)
def run_auto_topups() -> dict[str, list[int]]:
    """Charge the saved card of every enabled organization under its auto top-up threshold.
    Idempotent: one top-up in flight per organization; the next beat run retries what Stripe
    could not be reached for."""
    outcome = run_auto_topups_service()
    if outcome.declined:
        logger.warning("auto top-ups declined: %s", outcome.declined)
    return {
        "started": outcome.started,
        "declined": outcome.declined,
        "unreachable": outcome.unreachable,
        "given_up": outcome.given_up,
    }
