"""Credit amounts: the one place that converts between credits and integer millicredits.

Balances are stored as integer millicredits (1 credit = 1,000 millicredits). Amounts arrive as
credits with at most three decimals (``5000``, ``"0.05"``, ``Decimal("12.5")``); floats are
refused outright because they cannot represent most decimal amounts exactly, and strings must
be plain ASCII decimals (no exponents, separators or other scripts' digits).
"""

import re
from decimal import Decimal, InvalidOperation, localcontext

from orgbilling.errors import InvalidAmount

MILLICREDITS_PER_CREDIT = 1000
CREDIT_DECIMALS = 3
CREDIT_QUANTUM = Decimal("0.001")
# 10^14 millicredits = 100 billion credits ($1bn): far above any real balance, and small enough
# that every amount has at most 15 significant digits, so it survives a JSON number exactly.
MAX_MILLICREDITS = 10**14
MAX_CREDITS = MAX_MILLICREDITS // MILLICREDITS_PER_CREDIT

USD_QUANTUM = Decimal("0.01")
MAX_USD = Decimal("999999999.99")  # fits numeric(12, 2)

_PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$", re.ASCII)
# Enough digits to hold any in-range amount exactly while we check it.
_PRECISION = 40


def _to_decimal(value: Decimal | int | str, kind: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidAmount(
            f"{kind} amounts must be given as a decimal number, not {type(value).__name__}.",
            details={"value": str(value)},
        )
    if isinstance(value, str):
        text = value.strip()
        if not _PLAIN_DECIMAL.match(text):
            raise InvalidAmount(
                f"The {kind.lower()} amount is not a plain decimal number.", details={"value": value}
            )
        return Decimal(text)
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - Decimal(int) cannot fail
        raise InvalidAmount(
            f"The {kind.lower()} amount is not a number.", details={"value": str(value)}
        ) from None


def _checked(amount: Decimal, *, quantum: Decimal, maximum: Decimal, kind: str, value: object) -> Decimal:
    """Finite, within ±maximum, and exactly representable at ``quantum``; else InvalidAmount."""
    if not amount.is_finite():
        raise InvalidAmount(f"The {kind.lower()} amount must be finite.", details={"value": str(value)})
    if amount.adjusted() > maximum.adjusted():
        raise InvalidAmount(f"The {kind.lower()} amount is too large.", details={"value": str(value)})
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        if amount != amount.quantize(quantum):
            places = -quantum.as_tuple().exponent  # type: ignore[operator]
            raise InvalidAmount(
                f"{kind} amounts have at most {places} decimals.", details={"value": str(value)}
            )
        if abs(amount) > maximum:
            raise InvalidAmount(f"The {kind.lower()} amount is too large.", details={"value": str(value)})
        return amount.quantize(quantum) + 0  # "+ 0" turns -0 into 0


def credits_to_millicredits(value: Decimal | int | str, *, allow_zero: bool = False) -> int:
    """Parse a credit amount into positive integer millicredits, or raise ``InvalidAmount``.

    Refuses floats, booleans, NaN, infinities, negatives, zero (unless ``allow_zero``), more
    than three decimals and absurdly large amounts.
    """
    amount = _checked(
        _to_decimal(value, "Credit"),
        quantum=CREDIT_QUANTUM,
        maximum=Decimal(MAX_CREDITS),
        kind="Credit",
        value=value,
    )
    with localcontext() as ctx:
        ctx.prec = _PRECISION
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
    return (Decimal(millicredits) / MILLICREDITS_PER_CREDIT).quantize(CREDIT_QUANTUM)


def parse_usd(value: Decimal | int | str) -> Decimal:
    """Parse a non-negative USD amount with at most two decimals (and at most $999,999,999.99)."""
    amount = _checked(
        _to_decimal(value, "Money"), quantum=USD_QUANTUM, maximum=MAX_USD, kind="Money", value=value
    )
    if amount < 0:
        raise InvalidAmount("The money amount must not be negative.", details={"value": str(value)})
    return amount
