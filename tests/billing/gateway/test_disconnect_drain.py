"""A streaming client that goes away: the gateway keeps reading the upstream (bounded) and
settles with the upstream's usage; when that usage never comes, the fallback does not under-bill
a reasoning model or CJK text (issue 11 §2)."""

import time

import openai
import pytest

from billing.models import CreditReservation, CreditUsageAttribution, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from tests.billing.gateway.conftest import MODEL, api_key, openai_client
from tests.billing.gateway.test_chat import estimated_prompt, expected_cost

pytestmark = pytest.mark.usefixtures("model_price")

PROMPT = "a long answer please"


def settled_row(timeout: float = 15) -> CreditUsageAttribution:
    deadline = time.monotonic() + timeout
    while CreditReservation.objects.filter(status=CreditReservation.Status.HELD).exists():
        assert time.monotonic() < deadline, "the call was not settled"
        time.sleep(0.05)
    return CreditUsageAttribution.objects.get()


def stream_and_leave(client, *, after: int, **kwargs) -> list:
    """Open a stream, read ``after`` chunks (0: none), then close the connection."""
    received: list = []
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True, **kwargs
    ) as response:
        if after:
            for chunk in response.parse():
                received.append(chunk)
                if len(received) == after:
                    break
    return received


def assert_ledger_matches(allocation: UserCreditAllocation, row: CreditUsageAttribution) -> None:
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (row.credits_used, 0)
    assert find_all_drifts() == []


def test_a_client_that_leaves_mid_stream_is_charged_the_upstreams_usage_with_its_reasoning_tokens(
    gateway, upstream, make_funded_member
):
    # given: a reasoning model streaming 60 visible tokens after 500 hidden ones, slowly
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.completion_tokens = 60
    upstream.behaviour.reasoning_tokens = 500
    upstream.behaviour.token_delay = 0.02
    client = openai_client(gateway, api_key(user))

    # when: the client reads 5 chunks and leaves
    started = time.monotonic()
    received = stream_and_leave(client, after=5)

    # then: the gateway read on to the usage chunk and charged it, hidden tokens included
    row = settled_row()
    assert len(received) == 5
    assert time.monotonic() - started >= 60 * 0.02 * 0.9  # it waited for the whole stream
    assert (row.input_tokens, row.output_tokens) == (4, 560)  # the fake's prompt words, 60 + 500
    assert row.credits_used == expected_cost(4, 560)
    assert row.request_metadata["usage_source"] == "upstream"
    assert row.request_metadata["client_disconnected"] is True
    assert "disconnect_drain" not in row.request_metadata
    assert_ledger_matches(allocation, row)


def test_the_drain_after_a_disconnect_ends_at_LLM_DISCONNECT_DRAIN_SECONDS(
    gateway, upstream, make_funded_member, settings
):
    # given: a stream that would take 10 s, and a drain of 0.5 s
    settings.LLM_DISCONNECT_DRAIN_SECONDS = 0.5
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.completion_tokens = 200
    upstream.behaviour.token_delay = 0.05
    client = openai_client(gateway, api_key(user))

    # when
    left_at = time.monotonic()
    stream_and_leave(client, after=5)

    # then: settled from the text read by then, well before the upstream would have finished
    row = settled_row(timeout=5)
    assert time.monotonic() - left_at < 4
    assert 5 <= row.output_tokens < 200
    assert row.input_tokens == estimated_prompt(PROMPT)
    assert row.credits_used == expected_cost(row.input_tokens, row.output_tokens)
    assert row.request_metadata["usage_source"] == "estimated"
    assert row.request_metadata["disconnect_drain"] == "cut"
    assert_ledger_matches(allocation, row)


def test_a_reasoning_stream_cut_before_its_final_usage_is_charged_its_output_bound(
    gateway, upstream, make_funded_member
):
    # given: a stream whose chunks report the usage so far (300 reasoning tokens, then the
    # visible ones) and that breaks off halfway, before the final usage chunk
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.completion_tokens = 20
    upstream.behaviour.reasoning_tokens = 300
    upstream.behaviour.chunk_usage = True
    upstream.behaviour.mode = "drop"
    client = openai_client(gateway, api_key(user))

    # when
    with pytest.raises(openai.APIError):  # the in-band upstream_error event
        for _ in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True, max_tokens=800
        ):
            pass

    # then: the hidden tokens it may still have spent are not guessed low: max_tokens is charged
    row = settled_row()
    assert row.output_tokens == 800
    assert row.input_tokens == 4  # the prompt tokens the upstream did report
    assert row.credits_used == expected_cost(4, 800)
    assert row.request_metadata["usage_source"] == "reasoning_bound"
    assert_ledger_matches(allocation, row)


def test_a_reasoning_model_left_while_thinking_is_charged_not_released(
    gateway, upstream, make_funded_member, settings
):
    # given: a model named as reasoning, silent for 3 s after the headers, and a short drain
    settings.LLM_REASONING_MODELS = ["gw-test-*"]
    settings.LLM_DISCONNECT_DRAIN_SECONDS = 0.5
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.think_seconds = 3.0
    client = openai_client(gateway, api_key(user))

    # when: the client leaves before any chunk came
    stream_and_leave(client, after=0, max_tokens=300)

    # then
    row = settled_row()
    assert (row.input_tokens, row.output_tokens) == (estimated_prompt(PROMPT), 300)
    assert row.request_metadata["usage_source"] == "reasoning_bound"
    assert_ledger_matches(allocation, row)


def test_cjk_text_cut_short_is_charged_at_least_a_token_per_character(gateway, upstream, make_funded_member):
    # given: chunks of four CJK characters; the upstream breaks off after 11 of 20
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.text = "你好世界"
    upstream.behaviour.mode = "drop"
    client = openai_client(gateway, api_key(user))

    # when
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True
        ):
            pass

    # then
    row = settled_row()
    assert row.output_tokens == 11 * 4
    assert row.request_metadata["usage_source"] == "estimated"
    assert_ledger_matches(allocation, row)
