"""Charges and refused charges, counted (``metrics``) and logged, at the ledger's entry points.

``refusals_reported`` wraps the services that refuse charges (``deduct_credits``,
``reserve_credits``); the gateway's plan quota reports through ``charge_refused`` itself. A
refusal is one WARNING line, "credit deduction failed" (the reference documents' audit), with
the org, user, amount in credits and error code, and the request id as every line has; no
database row is written for it. ``charges_counted`` counts what was charged.
"""

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import structlog

from orgbilling.errors import ApplicationError
from orgbilling.money import millicredits_to_credits
from orgbilling.observability.metrics import CHARGE_REFUSALS, CHARGES, CREDITS_CHARGED

logger = structlog.get_logger("billing.charges")

P = ParamSpec("P")
R = TypeVar("R")


def _credits(amount: Any) -> str | None:
    if isinstance(amount, int) and not isinstance(amount, bool):
        try:
            return str(millicredits_to_credits(amount))
        except ArithmeticError:  # absurd amounts are refused by the ledger; log them as given
            pass
    return None if amount is None else repr(amount)


def charge_refused(
    refusal: ApplicationError, *, operation: str, org_id: str | None, user: Any, amount: Any
) -> None:
    """Count and log one refused charge (``amount`` in millicredits)."""
    CHARGE_REFUSALS.labels(operation, refusal.code).inc()
    logger.warning(
        "credit deduction failed",
        code=refusal.code,
        operation=operation,
        org_id=org_id,
        user_id=getattr(user, "username", None),
        amount_credits=_credits(amount),
        reason=refusal.message,
    )


def refusals_reported(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """For a keyword-only ledger service taking ``user``, ``org_id`` and ``amount``: every
    ``ApplicationError`` it raises is reported (then raised on, unchanged)."""

    def decorate(service: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(service)
        def reported(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return service(*args, **kwargs)
            except ApplicationError as refusal:
                charge_refused(
                    refusal,
                    operation=operation,
                    org_id=kwargs.get("org_id"),  # type: ignore[arg-type]
                    user=kwargs.get("user"),
                    amount=kwargs.get("amount"),
                )
                raise

        return reported

    return decorate


def count_charge(operation: str, result: Any) -> None:
    """Count one charge (a ``DeductionResult``) unless it was a replay."""
    if not getattr(result, "replayed", False):
        CHARGES.labels(operation).inc()
        charged = millicredits_to_credits(getattr(result, "credits_charged", 0))
        CREDITS_CHARGED.labels(operation).inc(float(charged))


def charges_counted(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """For a service returning a ``DeductionResult``: count the charge unless it was a replay."""

    def decorate(service: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(service)
        def counted(*args: P.args, **kwargs: P.kwargs) -> R:
            result = service(*args, **kwargs)
            count_charge(operation, result)
            return result

        return counted

    return decorate
