"""The ledger's figures on ``/metrics``, read from the database at scrape time (registered with
``orgbilling.observability.metrics`` by ``BillingConfig.ready``)."""

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily, Metric

from billing.selectors.operations import hold_counts, last_reconciliation_run

logger = logging.getLogger("orgbilling.observability.metrics")


class LedgerCollector:
    """Figures read from the database at scrape time (right across processes)."""

    def collect(self) -> Iterator[Metric]:
        try:
            holds = hold_counts()
            run = last_reconciliation_run()
        except DatabaseError:
            logger.warning("ledger figures unavailable for /metrics", exc_info=True)
            return
        by_state = GaugeMetricFamily(
            "orgbilling_credit_holds",
            "Credit holds: open (held now), overdue (held past expires_at, not yet released), "
            "expired (released by the expiry task: their caller never settled).",
            labels=["state"],
        )
        by_state.add_metric(["open"], holds.open)
        by_state.add_metric(["overdue"], holds.overdue)
        by_state.add_metric(["expired"], holds.expired)
        yield by_state
        yield GaugeMetricFamily(
            "orgbilling_credit_holds_open_credits",
            "Credits held by open holds.",
            value=float(holds.open_credits),
        )
        if run is not None:
            yield GaugeMetricFamily(
                "orgbilling_reconciliation_drifts",
                "Ledger invariant violations found by the last reconciliation (0 is the only good value).",
                value=run.drift_count,
            )
            yield GaugeMetricFamily(
                "orgbilling_reconciliation_last_run_timestamp_seconds",
                "When the last reconciliation finished (Unix time).",
                value=run.finished_at.timestamp(),
            )
