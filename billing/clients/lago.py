"""Our one wrapper of ``lago-python-client``: the configured client, Lago's errors translated
at the boundary, the readings of Lago's timestamps and amounts, and the plain fetches (invoices,
the webhook signing key). The subscription backend (``billing.backends.lago``) and the payment
services call it; nothing here touches the database.

A refusal (HTTP 4xx other than 429) leaves this module as ``BillingBackendRejected`` (permanent:
the same call cannot succeed); every other client error (5xx, 429, timeout, connection refused,
malformed answer) as ``BillingBackendUnavailable`` (try again later).
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

from billing.errors import BillingBackendRejected, BillingBackendUnavailable

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


def lago_timeout() -> httpx.Timeout:
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
                timeout=lago_timeout(),
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
