"""Exact cost through the real gateway and the fake upstream: each part of the upstream's usage
(cache reads and writes, reasoning, audio) charged once at its own price, streamed and JSON
calls charged alike, unpriced image options refused before anything goes upstream, and the
price of a call fixed when its hold is taken."""

import threading
import time
from decimal import ROUND_CEILING, Decimal

import openai
import pytest

from billing.models import CreditReservation, CreditUsageAttribution, ModelPrice
from billing.selectors.reconciliation import find_all_drifts
from tests.billing.gateway.conftest import MODEL, api_key, chat, openai_client

PARTS_MODEL = "gw-parts-model"
PROMPT = "four words of prompt"  # 4 prompt tokens for the fake upstream


@pytest.fixture
def parts_price(transactional_db) -> ModelPrice:
    return ModelPrice.objects.create(
        model=PARTS_MODEL,
        input_credits_per_million=Decimal("150"),
        output_credits_per_million=Decimal("600"),
        cache_read_credits_per_million=Decimal("75"),
        cache_write_credits_per_million=Decimal("187.5"),
        reasoning_credits_per_million=Decimal("900"),
        max_output_tokens=1000,
    )


def millicredits(per_million: Decimal | int) -> int:
    """Tokens × credits per million, summed: millicredits rounded up (not by billing.pricing)."""
    return int((Decimal(per_million) / 1_000_000 * 1000).to_integral_value(rounding=ROUND_CEILING))


def only_row() -> CreditUsageAttribution:
    return CreditUsageAttribution.objects.get()


def breakdown(row: CreditUsageAttribution) -> tuple[int, ...]:
    return (
        row.input_tokens,
        row.cached_tokens,
        row.cache_write_tokens,
        row.output_tokens,
        row.reasoning_tokens,
        row.audio_output_tokens,
    )


def test_a_cached_prompt_costs_less_by_exactly_the_cache_discount(
    gateway, upstream, parts_price, make_funded_member
):
    _, user, _ = make_funded_member(pool=100, allocation=50)
    client = openai_client(gateway, api_key(user))
    upstream.behaviour.prefix_tokens = 996  # 1,000 prompt tokens in all

    chat(client, PROMPT, model=PARTS_MODEL)
    uncached = only_row()
    upstream.behaviour.cached_tokens = 800
    chat(client, PROMPT, model=PARTS_MODEL)
    cached = CreditUsageAttribution.objects.exclude(pk=uncached.pk).get()

    assert uncached.credits_used == millicredits(1000 * 150 + 20 * 600) == 162
    assert cached.credits_used == millicredits(200 * 150 + 800 * 75 + 20 * 600) == 102
    assert uncached.credits_used - cached.credits_used == millicredits(800 * (150 - 75)) == 60
    assert (cached.input_tokens, cached.cached_tokens, uncached.cached_tokens) == (1000, 800, 0)
    assert cached.request_metadata["price"]["cache_read_credits_per_million"] == "75.000"
    assert find_all_drifts() == []


def test_reasoning_tokens_are_charged_once_at_the_reasoning_price(
    gateway, upstream, parts_price, make_funded_member
):
    _, user, _ = make_funded_member(pool=100, allocation=50)
    upstream.behaviour.reasoning_tokens = 100  # completion_tokens = 20 visible + 100 reasoning

    completion, raw = chat(openai_client(gateway, api_key(user)), PROMPT, model=PARTS_MODEL)

    assert completion.usage.completion_tokens == 120
    row = only_row()
    assert (row.output_tokens, row.reasoning_tokens) == (120, 100)
    assert row.credits_used == millicredits(4 * 150 + 20 * 600 + 100 * 900) == 103
    assert raw.headers["X-Cost-Incurred"] == "0.103"


def test_reasoning_tokens_without_a_reasoning_price_are_charged_once_at_the_output_price(
    gateway, upstream, model_price, make_funded_member
):
    _, user, _ = make_funded_member(pool=100, allocation=50)
    upstream.behaviour.reasoning_tokens = 100

    chat(openai_client(gateway, api_key(user)), PROMPT)

    row = only_row()
    assert (row.output_tokens, row.reasoning_tokens) == (120, 100)
    assert row.credits_used == millicredits(4 * 150 + 120 * 600) == 73


def test_a_streamed_call_reports_and_charges_what_the_same_json_call_does(
    gateway, upstream, parts_price, make_funded_member
):
    _, user, _ = make_funded_member(pool=100, allocation=50)
    client = openai_client(gateway, api_key(user))
    behaviour = upstream.behaviour
    behaviour.prefix_tokens, behaviour.cached_tokens, behaviour.cache_write_tokens = 996, 800, 100
    behaviour.reasoning_tokens = 50

    completion, raw = chat(client, PROMPT, model=PARTS_MODEL)
    json_row = only_row()
    stream = client.chat.completions.create(
        model=PARTS_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed_usage = [chunk.usage for chunk in stream if chunk.usage is not None]
    stream_row = CreditUsageAttribution.objects.exclude(pk=json_row.pk).get()

    expected = millicredits(100 * 150 + 800 * 75 + 100 * Decimal("187.5") + 20 * 600 + 50 * 900)
    assert json_row.credits_used == stream_row.credits_used == expected == 151
    assert breakdown(json_row) == breakdown(stream_row) == (1000, 800, 100, 70, 50, 0)
    assert raw.headers["X-Cost-Incurred"] == "0.151"
    assert streamed_usage[-1].model_dump() == completion.usage.model_dump()
    assert json_row.request_metadata["price"] == stream_row.request_metadata["price"]
    assert (json_row.request_metadata["stream"], stream_row.request_metadata["stream"]) == (False, True)


@pytest.mark.usefixtures("model_price")
@pytest.mark.parametrize(("size", "quality"), [("512x512", None), ("1024x1024", "low"), (None, "hd")])
def test_images_of_an_unpriced_size_or_quality_are_refused_before_going_upstream(
    gateway, upstream, make_funded_member, size, quality
):
    _, user, allocation = make_funded_member(pool=100, allocation=50)
    options = {k: v for k, v in {"size": size, "quality": quality}.items() if v}

    with pytest.raises(openai.BadRequestError) as refused:
        openai_client(gateway, api_key(user)).images.generate(model=MODEL, prompt="a fox", **options)

    assert refused.value.body["code"] == "unpriced_image_option"
    assert upstream.behaviour.requests == []
    assert CreditReservation.objects.count() == 0
    assert CreditUsageAttribution.objects.count() == 0


def test_a_price_change_between_reserve_and_settle_charges_the_price_at_reserve(
    gateway, upstream, parts_price, make_funded_member
):
    # given a call that is upstream (its hold taken) when staff raise the prices
    _, user, _ = make_funded_member(pool=100, allocation=50)
    client = openai_client(gateway, api_key(user))
    upstream.behaviour.prefix_tokens, upstream.behaviour.cached_tokens = 996, 800
    upstream.behaviour.latency = 1.0
    call = threading.Thread(target=chat, args=(client, PROMPT), kwargs={"model": PARTS_MODEL})
    call.start()
    deadline = time.monotonic() + 10
    while not CreditReservation.objects.exists():
        assert time.monotonic() < deadline, "the call was never held"
        time.sleep(0.02)

    # when
    ModelPrice.objects.filter(pk=parts_price.pk).update(
        input_credits_per_million=Decimal("1500"),
        cache_read_credits_per_million=Decimal("750"),
        output_credits_per_million=Decimal("6000"),
    )
    call.join(timeout=15)

    # then the call is charged, and recorded, at the price it was held at
    row = only_row()
    assert row.credits_used == millicredits(200 * 150 + 800 * 75 + 20 * 600) == 102
    assert row.request_metadata["price"]["cache_read_credits_per_million"] == "75.000"
    assert row.request_metadata["price"]["input_credits_per_million"] == "150.000"
