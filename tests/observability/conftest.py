"""Fixtures of the observability tests: scraping /metrics, capturing the JSON log lines, and
the real servers of other suites (the gateway under uvicorn with a fake upstream; Redis and a
Celery worker from ``scripts/redis.sh``)."""

import json
import logging
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orgbilling.observability.logging import formatter
from tests.billing.gateway.conftest import gateway, gateway_server, model_price, upstream  # noqa: F401
from tests.billing.tasks.conftest import celery_worker_process, redis_url  # noqa: F401

METRICS_TOKEN = "test-metrics-token-0123456789"


class Scrape:
    """One /metrics exposition, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def find(self, name: str, **labels: str) -> list[float]:
        return [
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        """The one sample with these labels; 0 for a counter never incremented."""
        found = self.find(name, **labels)
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else 0.0

    def labels(self, name: str) -> list[dict[str, str]]:
        return [sample.labels for sample in self.samples if sample.name == name]


@pytest.fixture
def scrape(client, settings) -> Callable[[], Scrape]:
    """GET /metrics with the token, as Prometheus would."""
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []

    def get() -> Scrape:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"].startswith("text/plain")
        return Scrape(response.content.decode())

    return get


class JsonLogs(logging.Handler):
    """Every record, rendered by the production formatter and parsed back."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter("json"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def events(self, event: str) -> list[dict]:
        return [line for line in self.lines if line["event"] == event]


@pytest.fixture
def json_logs() -> Iterator[JsonLogs]:
    handler = JsonLogs()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
