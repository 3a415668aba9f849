from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import (
    MAX_MILLICREDITS,
    credits_to_millicredits,
    millicredits_to_credits,
    parse_usd,
    validate_millicredits,
)
from orgbilling.errors import InvalidAmount


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5000", 5_000_000),
        ("0.05", 50),
        ("0.001", 1),
        (Decimal("12.5"), 12_500),
        (7, 7_000),
        (" 1.250 ", 1_250),
    ],
)
def test_credits_parse_to_exact_millicredits(value, expected):
    assert credits_to_millicredits(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0.0001",
        "abc",
        "",
        "NaN",
        "Infinity",
        "-inf",
        "-5",
        "0",
        "-0",
        0.05,
        True,
        None,
        "1e30",
        "1e3",
        "1e1000000",
        "1_000",
        "\u0661\u0662",
        "1.0000000000000000000000000000001",
        "999999999999.9999999999999999999",
        Decimal("1E+1000000"),
        Decimal("0.0000000000000000000000000000000001"),
        10**20,
        [1],
    ],
)
def test_bad_credit_amounts_are_refused(value):
    with pytest.raises(InvalidAmount):
        credits_to_millicredits(value)


def test_zero_is_allowed_only_when_asked():
    assert credits_to_millicredits("0", allow_zero=True) == 0
    with pytest.raises(InvalidAmount):
        validate_millicredits(0)
    with pytest.raises(InvalidAmount):
        validate_millicredits(-1, allow_zero=True)
    with pytest.raises(InvalidAmount):
        validate_millicredits(MAX_MILLICREDITS + 1)


@given(st.integers(min_value=1, max_value=MAX_MILLICREDITS))
def test_round_trip_is_exact(millicredits):
    credits = millicredits_to_credits(millicredits)
    assert credits.as_tuple().exponent == -3
    assert credits_to_millicredits(credits) == millicredits


@pytest.mark.parametrize(("value", "expected"), [("50", Decimal("50.00")), ("19.9", Decimal("19.90"))])
def test_usd_parses_to_cents(value, expected):
    assert parse_usd(value) == expected


@pytest.mark.parametrize("value", ["1.001", "-1", "NaN", 1.5, "x", "1e30", "10000000000", Decimal("1E+30")])
def test_bad_usd_is_refused(value):
    with pytest.raises(InvalidAmount):
        parse_usd(value)


def test_negative_zero_usd_is_plain_zero():
    assert str(parse_usd("-0")) == "0.00"


def test_largest_amount_is_exact():
    assert credits_to_millicredits("100000000000") == MAX_MILLICREDITS
    assert credits_to_millicredits("99999999999.999") == MAX_MILLICREDITS - 1
