"""Our one wrapper of the ``stripe`` library: the configured client, and Stripe's errors
translated at the boundary (DESIGN.md: wrap each external SDK once). The payment services
(``billing.payments``) call it; nothing here touches the database."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import stripe
from django.conf import settings

from billing.errors import BillingBackendUnavailable, PaymentDeclined

logger = logging.getLogger(__name__)

# Retried by the library with the same idempotency key, so a retry never opens a second session.
NETWORK_RETRIES = 1


def stripe_configured() -> bool:
    """Card purchases need the secret key and both return URLs of Checkout."""
    return bool(
        settings.STRIPE_SECRET_KEY
        and settings.STRIPE_CHECKOUT_SUCCESS_URL
        and settings.STRIPE_CHECKOUT_CANCEL_URL
    )


def stripe_client() -> stripe.StripeClient:
    base_addresses: dict[str, str] = {}
    if settings.STRIPE_API_BASE:
        base_addresses["api"] = settings.STRIPE_API_BASE.rstrip("/")
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base_addresses or None,  # type: ignore[arg-type]
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
        max_network_retries=NETWORK_RETRIES,
    )


@contextmanager
def stripe_errors(action: str) -> Iterator[None]:
    """Any failure of a Stripe call is ``BillingBackendUnavailable`` (503): nothing was bought."""
    try:
        yield
    except stripe.StripeError as exc:
        logger.warning("Stripe %s failed: %s (HTTP %s)", action, exc.__class__.__name__, exc.http_status)
        raise BillingBackendUnavailable(
            "The payment provider is unavailable; nothing was charged. Try again.",
            details={"provider": "stripe", "action": action, "status": exc.http_status},
        ) from exc


@contextmanager
def stripe_charge_errors(action: str) -> Iterator[None]:
    """Like ``stripe_errors``, but a declined card is ``PaymentDeclined`` (Stripe's ``CardError``
    carries the failed PaymentIntent, if it made one)."""
    try:
        with stripe_errors(action):
            yield
    except BillingBackendUnavailable as exc:
        cause = exc.__cause__
        if not isinstance(cause, stripe.CardError):
            raise
        intent = cause.error.payment_intent if cause.error else None
        raise PaymentDeclined(
            str(cause.user_message or cause.code or "The card was declined."),
            payment_intent=intent.id if intent else None,
            details={"code": cause.code, "decline_code": cause.error.decline_code if cause.error else None},
        ) from cause
