"""Prices: exact Decimal arithmetic, rounded up to the millicredit; unknown models refused."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import UnknownModel, UnpricedImageOption
from billing.models import ModelPrice
from billing.pricing import PriceSnapshot, price_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def gpt():
    return ModelPrice.objects.create(
        model="gpt-4o-mini",
        input_credits_per_million=Decimal("15"),
        output_credits_per_million=Decimal("60"),
        image_credits=Decimal("4"),
        image_prices={"1024x1024/hd": 8.5},
    )


def test_token_cost_is_exact_and_rounds_up(gpt):
    price = price_for("gpt-4o-mini")
    # 1,000,000 input tokens at 15 credits/M = 15 credits = 15,000 millicredits exactly
    assert price.token_cost(input_tokens=1_000_000, output_tokens=0) == 15_000
    # 1 output token costs 0.00006 credits = 0.06 millicredits → rounded up to 1
    assert price.token_cost(input_tokens=0, output_tokens=1) == 1
    assert price.token_cost(input_tokens=1200, output_tokens=300) == 36  # 18 + 18 mc
    assert price.token_cost(input_tokens=0, output_tokens=0) == 0


def test_image_prices_by_size_and_quality(gpt):
    assert price_for("gpt-4o-mini").image_cost(count=2) == 8_000
    assert price_for("gpt-4o-mini", size="1024x1024", quality="hd").image_cost(count=2) == 17_000
    with pytest.raises(UnpricedImageOption):
        price_for("gpt-4o-mini", size="512x512")


def test_unknown_and_inactive_models_are_refused(gpt):
    with pytest.raises(UnknownModel):
        price_for("no-such-model")
    ModelPrice.objects.filter(pk=gpt.pk).update(is_active=False)
    with pytest.raises(UnknownModel):
        price_for("gpt-4o-mini")


@given(
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.decimals(min_value=0, max_value=1000, places=3),
    st.decimals(min_value=0, max_value=1000, places=3),
)
def test_cost_is_never_below_the_exact_price_and_less_than_one_millicredit_above(inp, out, p_in, p_out):
    snapshot = PriceSnapshot("m", p_in, p_out, Decimal(0))
    exact_millicredits = (Decimal(inp) * p_in + Decimal(out) * p_out) / 1000  # credits/M × 1000 mc / 1M
    cost = snapshot.token_cost(input_tokens=inp, output_tokens=out)
    assert exact_millicredits <= cost < exact_millicredits + 1


def test_snapshot_records_the_price_used(gpt):
    assert price_for("gpt-4o-mini").as_metadata() == {
        "model": "gpt-4o-mini",
        "input_credits_per_million": "15.000",
        "output_credits_per_million": "60.000",
        "image_credits": "4.000",
    }
