"""What "input tokens" and "output tokens" include, and each usage detail priced once
(billing/call_usage.py, PriceSnapshot.usage_cost): the upstream's usage as OpenAI and LiteLLM
report it, parsed by the gateway's metering."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.call_usage import Usage, consistent_usage, fallback_usage
from billing.gateway.metering import StreamMeter, reported_usage
from billing.pricing import PriceSnapshot

PRICE = PriceSnapshot(
    model="m",
    input_credits_per_million=Decimal("150"),
    output_credits_per_million=Decimal("600"),
    image_credits=Decimal(0),
    cache_read_credits_per_million=Decimal("75"),
    cache_write_credits_per_million=Decimal("187.5"),
    audio_input_credits_per_million=Decimal("4000"),
    reasoning_credits_per_million=Decimal("900"),
    audio_output_credits_per_million=Decimal("8000"),
)
PLAIN = PriceSnapshot("m", Decimal("150"), Decimal("600"), Decimal(0))


def test_cached_tokens_are_part_of_prompt_tokens_and_charged_at_the_cache_read_price_only():
    usage = reported_usage({"usage": {"prompt_tokens": 1000, "completion_tokens": 0,
                                      "prompt_tokens_details": {"cached_tokens": 800}}})  # fmt: skip

    assert usage == Usage(1000, 0, "upstream", cached_tokens=800)
    # 200 × 150 + 800 × 75 per million = 0.09 credits; not 1000 × 150 + 800 × 75
    assert PRICE.usage_cost(usage) == 90


def test_cache_writes_are_part_of_prompt_tokens_and_charged_at_the_cache_write_price():
    usage = reported_usage({"usage": {"prompt_tokens": 1000, "completion_tokens": 0,
                                      "cache_creation_input_tokens": 400}})  # fmt: skip

    assert usage is not None
    assert usage.cache_write_tokens == 400
    assert PRICE.usage_cost(usage) == 165  # 600 × 150 + 400 × 187.5 per million


def test_reasoning_tokens_are_part_of_completion_tokens_and_charged_once():
    usage = reported_usage({"usage": {"prompt_tokens": 0, "completion_tokens": 1000,
                                      "completion_tokens_details": {"reasoning_tokens": 600}}})  # fmt: skip

    assert usage is not None
    assert usage.reasoning_tokens == 600
    assert PRICE.usage_cost(usage) == 780  # 400 × 600 + 600 × 900 per million
    assert PLAIN.usage_cost(usage) == 600  # no reasoning price: the output price, once


def test_audio_tokens_are_parts_of_the_totals_at_the_audio_prices():
    usage = reported_usage({"usage": {
        "prompt_tokens": 1000, "completion_tokens": 1000,
        "prompt_tokens_details": {"audio_tokens": 100, "cached_tokens": 0},
        "completion_tokens_details": {"audio_tokens": 200, "reasoning_tokens": 0},
    }})  # fmt: skip

    assert usage is not None
    assert (usage.audio_input_tokens, usage.audio_output_tokens) == (100, 200)
    # 900 × 150 + 100 × 4000 + 800 × 600 + 200 × 8000 per million
    assert PRICE.usage_cost(usage) == 2615


def test_parts_reported_beyond_their_total_raise_the_total_so_each_token_is_charged():
    usage = consistent_usage(input_tokens=10, output_tokens=0, source="upstream", cached_tokens=300)

    assert usage.input_tokens == 300
    assert PRICE.usage_cost(usage) == PRICE.usage_cost(Usage(300, 0, "upstream", cached_tokens=300))


def test_nonsense_details_are_ignored_not_trusted():
    usage = reported_usage({"usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                      "prompt_tokens_details": {"cached_tokens": -4},
                                      "completion_tokens_details": {"reasoning_tokens": True}}})  # fmt: skip

    assert usage == Usage(10, 5, "upstream")


def test_a_stream_meter_keeps_the_breakdown_of_the_final_usage_chunk():
    meter = StreamMeter(strip_usage=False)
    chunk = b'data: {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 9, ' \
            b'"prompt_tokens_details": {"cached_tokens": 40}, ' \
            b'"completion_tokens_details": {"reasoning_tokens": 7}}}\n\n'  # fmt: skip

    meter.feed(chunk)

    assert meter.usage_or_estimate(estimated_input_tokens=1) == Usage(
        50, 9, "upstream", cached_tokens=40, reasoning_tokens=7
    )


def test_a_lost_stream_keeps_its_prompt_breakdown_and_charges_its_output_plainly():
    reported = Usage(50, 9, "upstream", cached_tokens=40, reasoning_tokens=7)

    usage = fallback_usage(
        reported=reported, estimated_input_tokens=60, text_output_tokens=3, output_bound=100, reasoning=True
    )

    assert usage == Usage(50, 100, "reasoning_bound", cached_tokens=40)


def test_a_price_snapshot_survives_its_metadata_round_trip():
    assert PriceSnapshot.from_metadata(PRICE.as_metadata()) == PRICE
    assert PriceSnapshot.from_metadata(PLAIN.as_metadata()) == PLAIN


counts = st.integers(min_value=0, max_value=10**7)


@given(counts, counts, counts, counts, counts, counts, counts)
def test_the_hold_estimate_bounds_the_cost_however_the_totals_are_split(
    input_tokens, output_tokens, cached, written, audio_in, reasoning, audio_out
):
    usage = consistent_usage(
        input_tokens=input_tokens, output_tokens=output_tokens, source="upstream", cached_tokens=cached,
        cache_write_tokens=written, audio_input_tokens=audio_in, reasoning_tokens=reasoning,
        audio_output_tokens=audio_out,
    )  # fmt: skip

    bound = PRICE.worst_case_cost(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)

    assert PRICE.usage_cost(usage) <= bound
