"""Credit amounts: the one place that converts between credits and integer millicredits.

Balances are stored as integer millicredits (1 credit = 1,000 millicredits). Amounts arrive as
credits with at most three decimals (``5000``, ``"0.05"``, ``Decimal("12.5")``); floats are
refused outright because they cannot represent most decimal amounts exactly.
"""

from decimal import Decimal, InvalidOperation

from orgbilling.errors import InvalidAmount

MILLICREDITS_PER_CREDIT = 1000
CREDIT_DECIMALS = 3
# 10^15 millicredits = a trillion credits ($10bn): far above any real balance, far below
# BIGINT's 9.2e18, so sums of a few thousand maxima still fit.
MAX_MILLICREDITS = 10**15

USD_QUANTUM = Decimal("0.01")


def credits_to_millicredits(value: Decimal | int | str, *, allow_zero: bool = False) -> int:
    """Parse a credit amount into positive integer millicredits, or raise ``InvalidAmount``.

    Refuses floats, booleans, NaN, infinities, negatives, zero (unless ``allow_zero``), more
    than three decimals and absurdly large amounts.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidAmount(
            f"Credit amounts must be given as a decimal number, not {type(value).__name__}.",
            details={"value": str(value)},
        )
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidAmount("The credit amount is not a number.", details={"value": str(value)}) from None
    if not amount.is_finite():
        raise InvalidAmount("The credit amount must be finite.", details={"value": str(value)})
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -CREDIT_DECIMALS:
        raise InvalidAmount(
            f"Credit amounts have at most {CREDIT_DECIMALS} decimals.", details={"value": str(value)}
        )
    if abs(amount) > MAX_MILLICREDITS // MILLICREDITS_PER_CREDIT:
        raise InvalidAmount("The credit amount is too large.", details={"value": str(value)})
    millicredits = int(amount * MILLICREDITS_PER_CREDIT)
    return validate_millicredits(millicredits, allow_zero=allow_zero)


def validate_millicredits(millicredits: int, *, allow_zero: bool = False) -> int:
    """Check an amount already in millicredits (positive, in range); return it."""
    if isinstance(millicredits, bool) or not isinstance(millicredits, int):
        raise InvalidAmount("Millicredit amounts are whole numbers.", details={"value": str(millicredits)})
    if millicredits < 0 or (millicredits == 0 and not allow_zero):
        raise InvalidAmount(
            "The credit amount must be positive."
            if not allow_zero
            else "The credit amount must not be negative.",
            details={"value": str(Decimal(millicredits) / MILLICREDITS_PER_CREDIT)},
        )
    if millicredits > MAX_MILLICREDITS:
        raise InvalidAmount(
            "The credit amount is too large.",
            details={"value": str(Decimal(millicredits) / MILLICREDITS_PER_CREDIT)},
        )
    return millicredits


def millicredits_to_credits(millicredits: int) -> Decimal:
    """Integer millicredits → credits as a ``Decimal`` with three places (``Decimal("5.000")``)."""
    return (Decimal(millicredits) / MILLICREDITS_PER_CREDIT).quantize(Decimal("0.001"))


def parse_usd(value: Decimal | int | str) -> Decimal:
    """Parse a non-negative USD amount with at most two decimals."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidAmount("Money amounts must be decimal numbers.", details={"value": str(value)})
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidAmount("The money amount is not a number.", details={"value": str(value)}) from None
    if not amount.is_finite() or amount < 0:
        raise InvalidAmount("The money amount must be a non-negative number.", details={"value": str(value)})
    if amount != amount.quantize(USD_QUANTUM):
        raise InvalidAmount("Money amounts have at most 2 decimals.", details={"value": str(value)})
    return amount.quantize(USD_QUANTUM)
