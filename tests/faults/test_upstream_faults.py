"""The upstream misbehaving under the served app: it hangs, resets the connection (before or
mid-stream), stalls mid-stream, or answers malformed JSON / a malformed SSE stream.

A call that produced nothing is refused (504/502 in the error shape, in-band for a stream whose
200 was already sent) and its hold released; a stream cut after text was sent is charged by the
gateway's rule (``billing/gateway/streaming.py``): the upstream's usage when it came, else the
estimated prompt plus one token per text chunk or per 4 characters, whichever is more.
"""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from billing.models import CreditReservation, CreditUsageAttribution
from billing.pricing import price_for
from billing.selectors.reconciliation import find_all_drifts
from tests.fake_upstream import FakeUpstream, running_upstream
from tests.faults.conftest import assert_error_shape
from tests.load.test_served_under_load import MODEL, app_environment, build_teams
from tests.served import ServedApp, served_app

CHAT = "/api/v1/llm/chat/completions"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 50}
# The gateway's estimate of that prompt: ceil(len("user" + "hello there") / 4) + 4 per message + 3.
ESTIMATED_PROMPT_TOKENS = 4 + 4 + 3
UPSTREAM_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with running_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def app(
    django_db_setup: Any, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApp]:
    """One served app for the module (each test's data is flushed under it: it holds no locks
    between calls)."""
    environment = app_environment(upstream, LLM_UPSTREAM_TIMEOUT_SECONDS=str(UPSTREAM_TIMEOUT))
    with served_app(tmp_path_factory.mktemp("upstream-faults"), **environment) as served:
        yield served


@pytest.fixture
def member_key(transactional_db: Any, upstream: FakeUpstream) -> str:
    upstream.behaviour.mode = "ok"
    upstream.behaviour.completion_tokens = 20
    upstream.behaviour.hang_seconds = 3 * UPSTREAM_TIMEOUT
    return build_teams(1, 1)[0].members[0][1]


def post(app: ServedApp, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{app.url}{CHAT}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def events(stream_text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON data events of an SSE body, and its comment lines."""
    payloads, comments = [], []
    for event in stream_text.split("\n\n"):
        for line in event.split("\n"):
            if line.startswith("data: ") and line != "data: [DONE]":
                payloads.append(json.loads(line[6:]))  # the gateway relays only JSON
            elif line.startswith(":"):
                comments.append(line)
    return payloads, comments


def assert_nothing_charged() -> None:
    assert CreditUsageAttribution.objects.count() == 0
    assert list(CreditReservation.objects.values_list("status", flat=True)) == ["released"]
    assert find_all_drifts() == []


def assert_charged_by_the_stream_rule(*, text_chunks: int) -> CreditUsageAttribution:
    output_tokens = max(text_chunks, len("tok " * text_chunks) // 4)
    row = CreditUsageAttribution.objects.get()
    assert (row.input_tokens, row.output_tokens) == (ESTIMATED_PROMPT_TOKENS, output_tokens)
    cost = price_for(MODEL).token_cost(input_tokens=ESTIMATED_PROMPT_TOKENS, output_tokens=output_tokens)
    assert row.credits_used == cost
    assert row.request_metadata["usage_source"] == "estimated"
    assert list(CreditReservation.objects.values_list("status", flat=True)) == ["settled"]
    assert find_all_drifts() == []
    return row


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_upstream_that_hangs_answers_504_and_releases_the_hold(app, upstream, member_key, stream):
    upstream.behaviour.mode = "hang"

    answer = post(app, member_key, {**BODY, "stream": stream})

    assert_error_shape(answer, 504, {"upstream_timeout"})
    assert_nothing_charged()


@pytest.mark.parametrize("mode", ["malformed", "drop"], ids=["malformed-json", "reset-mid-body"])
def test_a_malformed_or_cut_json_answer_is_502_and_releases_the_hold(app, upstream, member_key, mode):
    upstream.behaviour.mode = mode

    answer = post(app, member_key, BODY)

    assert_error_shape(answer, 502, {"upstream_error"})
    assert_nothing_charged()


@pytest.mark.parametrize(
    ("mode", "code"), [("drop", "upstream_error"), ("stall", "upstream_timeout")], ids=["reset", "stall"]
)
def test_a_stream_cut_midway_tells_the_client_and_charges_the_text_streamed(
    app, upstream, member_key, mode, code
):
    upstream.behaviour.mode = mode  # 11 of 20 chunks of "tok ", then reset / silence

    answer = post(app, member_key, {**BODY, "stream": True})

    assert answer.status_code == 200
    payloads, comments = events(answer.text)
    texts = [p for p in payloads if "choices" in p]
    assert len(texts) == 11
    assert_error_shape(httpx.Response(502, json=payloads[-1]), 502, {code})
    row = assert_charged_by_the_stream_rule(text_chunks=11)
    assert row.request_metadata["upstream_failure"] == code
    assert f"cost_incurred={row.credits_used / 1000:.3f}" in comments[-1]


def test_a_malformed_stream_is_refused_in_band_and_only_its_good_text_is_charged(app, upstream, member_key):
    upstream.behaviour.mode = "bad_sse"  # 3 good chunks, then garbage, no usage chunk, no [DONE]
    upstream.behaviour.completion_tokens = 3

    answer = post(app, member_key, {**BODY, "stream": True})

    assert answer.status_code == 200
    payloads, _ = events(answer.text)  # every relayed event parses: the garbage was not passed on
    assert len([p for p in payloads if "choices" in p]) == 3
    error = assert_error_shape(httpx.Response(502, json=payloads[-1]), 502, {"upstream_error"})
    assert error["details"]["malformed_events"] == 3
    assert_charged_by_the_stream_rule(text_chunks=3)


def test_a_malformed_stream_with_no_text_charges_nothing(app, upstream, member_key):
    upstream.behaviour.mode = "bad_sse"
    upstream.behaviour.completion_tokens = 0

    answer = post(app, member_key, {**BODY, "stream": True})

    assert answer.status_code == 200
    payloads, comments = events(answer.text)
    assert_error_shape(httpx.Response(502, json=payloads[-1]), 502, {"upstream_error"})
    assert comments == []  # no cost trailer
    assert_nothing_charged()
