"""Celery tasks of the billing app: thin wrappers over the services, retried with backoff.

Every periodic task is idempotent (a re-run or a duplicate delivery changes nothing more), so
tasks are acknowledged late and a worker lost mid-task means the task runs again. Transient
database errors (a dropped connection, a deadlock victim, a lock timeout) are retried with
exponential backoff and jitter (``orgbilling.db.TRANSIENT_DB_ERRORS``: pool, lock and statement
timeouts included); anything else fails the run and the next scheduled run starts over. A
retry or a redelivery after a partial run re-checks each item under its locks, so nothing is
applied twice. The schedule is ``CELERY_BEAT_SCHEDULE`` in ``orgbilling/settings/tasks.py``.
"""

import logging
from datetime import date
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from billing.clients.lago import lago_configured
from billing.errors import BillingBackendUnavailable, ReservationNotHeld
from billing.ledger.reservations import expire_reservations as release_expired_holds
from billing.payments import webhook_events
from billing.payments.auto_topup import run_auto_topups as run_auto_topups_service
from billing.payments.lago_events import orgs_to_sync
from billing.payments.lago_events import sync_lago_invoices as sync_invoices_service
from billing.services import alerts, expiry, grant_expiry, periods, reconciliation, rollups
from billing.services.gateway_calls import spool
from billing.services.subscriptions import retry_pending_subscriptions as retry_pending_service
from orgbilling.db import TRANSIENT_DB_ERRORS
from orgbilling.tasks import (
    RETRYING,
    retry_policy,
    send_email,  # noqa: F401  (the task keeps its name billing.tasks.send_email)
)

logger = logging.getLogger(__name__)


RESERVATION_BATCH = 1000


@shared_task(name="billing.tasks.expire_allocations", **RETRYING)
def expire_allocations() -> dict[str, Any]:
    """Deactivate allocations past ``expires_at``; their unused credits return to the pool."""
    outcome = expiry.expire_allocations()
    return {
        "expired": len(outcome.expired),
        "returned_to_pool": outcome.returned_to_pool,
        "skipped_with_holds": outcome.skipped_with_holds,
    }


@shared_task(name="billing.tasks.apply_allocation_periods", **RETRYING)
def apply_allocation_periods() -> dict[str, Any]:
    """Apply the period boundaries (reset or refill) of recurring allocations that are due,
    each exactly once; missed ones (downtime) are caught up in order."""
    outcome = periods.apply_allocation_periods()
    return {
        "allocations": len(outcome.applied),
        "boundaries": outcome.boundaries,
        "shortfall": outcome.shortfall,
        "skipped": {str(pk): reason.value for pk, reason in outcome.skipped.items()},
    }


@shared_task(name="billing.tasks.expire_credit_grants", **RETRYING)
def expire_credit_grants() -> dict[str, Any]:
    """Expire credit grants past ``expires_at``: their unspent, unallocated credits leave the
    pool (``credit_expiry`` history rows); expired credits members gave back leave too."""
    outcome = grant_expiry.expire_credit_grants()
    return {"expired": outcome.expired, "forfeited": outcome.forfeited}


@shared_task(name="billing.tasks.settle_spooled_calls", **RETRYING)
def settle_spooled_calls() -> dict[str, Any]:
    """Charge the gateway calls whose settlement the database refused and that are still
    spooled (``LLM_SETTLEMENT_SPOOL_DIR``): the web process gave up retrying, or died; then
    the calls whose process died mid-call, from their open records (``process_lost``)."""
    outcome = spool.settle_spooled()
    return {"settled": len(outcome.settled), "failed": outcome.failed}


@shared_task(name="billing.tasks.expire_reservations", **RETRYING)
def expire_reservations() -> dict[str, Any]:
    """Release holds past their ``expires_at`` (their caller never settled them). Spooled
    settlements, and calls whose process died (open records), are charged first: a hold owed
    one is settled, not released."""
    try:
        spooled = len(spool.settle_spooled().settled)
    except OSError:
        # An unreadable spool must not keep every stale hold locked up; what it holds is still
        # charged later (a late settlement draws on the payer's free credits).
        logger.exception("expire_reservations: could not read the settlement spool; expiring holds anyway")
        spooled = 0
    expired = 0
    while True:
        try:
            batch = release_expired_holds(limit=RESERVATION_BATCH)
        except ReservationNotHeld:
            # Settled between being listed and being released: no longer stale. The listing
            # is taken afresh, so the loop still ends.
            continue
        expired += batch
        if batch < RESERVATION_BATCH:
            if spooled:
                logger.info("expire_reservations: %d spooled settlement(s) charged first", spooled)
            return {"expired": expired}


@shared_task(name="billing.tasks.prune_webhook_events", **RETRYING)
def prune_webhook_events() -> dict[str, Any]:
    """Processed webhook events older than ``WEBHOOK_EVENT_RETENTION_DAYS`` are deleted."""
    return {
        "pruned": webhook_events.prune_webhook_events(older_than_days=settings.WEBHOOK_EVENT_RETENTION_DAYS)
    }


@shared_task(name="billing.tasks.rollup_usage", **RETRYING)
def rollup_usage(since: str | None = None) -> dict[str, Any]:
    """Recompute ``UsageDailyRollup`` from ``since`` (ISO date) to today; default yesterday."""
    first, last = rollups.default_days()
    if since is not None:
        first = date.fromisoformat(since)
    rows = rollups.rollup_usage(first_day=first, last_day=last)
    return {"first_day": first.isoformat(), "last_day": last.isoformat(), "rows": rows}


@shared_task(name="billing.tasks.evaluate_usage_alerts", **RETRYING)
def evaluate_usage_alerts() -> dict[str, Any]:
    """Fire and resolve the 50/80/90/100 % usage alerts of allocations and pools."""
    result = alerts.evaluate_usage_alerts()
    return {
        "targets_checked": result.targets_checked,
        "triggered": result.count("triggered"),
        "resolved": result.count("resolved"),
    }


@shared_task(name="billing.tasks.reconcile_credits", **RETRYING)
def reconcile_credits() -> dict[str, Any]:
    """Check every cross-row ledger invariant; alert operations on any drift. The outcome is
    recorded for /metrics (``orgbilling_reconciliation_drifts``)."""
    started_at = timezone.now()
    drifts = alerts.alert_on_ledger_drift()
    reconciliation.record_reconciliation_run(started_at=started_at, drift_count=len(drifts))
    return {"drifts": len(drifts)}


# Subscriptions, invoices and auto top-up. Their names keep the module they were first
# scheduled from (``billing.payments.tasks.*``), so beat entries and messages already queued
# under those names still find them.
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
