"""A call never outlives its hold: past ``LLM_MAX_CALL_SECONDS`` (by default the hold's lifetime
minus a minute) the gateway ends it and charges what was generated, from the live hold
(issue 11 §2)."""

import json

import httpx
import pytest

from billing.models import CreditReservation, CreditUsageAttribution
from billing.selectors.reconciliation import find_all_drifts
from tests.billing.gateway.conftest import MODEL, api_key
from tests.helpers import snapshot_balances

pytestmark = pytest.mark.usefixtures("model_price")
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "four words of prompt"}], "max_tokens": 100}


def test_a_stream_past_the_longest_call_is_ended_and_charged_from_its_live_hold(
    gateway, upstream, make_funded_member, settings
):
    # given: a stream of 20 tokens 0.15 s apart (3 s), and calls capped at 1 s
    settings.LLM_MAX_CALL_SECONDS = 1.0
    upstream.behaviour.token_delay = 0.15
    _, user, _ = make_funded_member()
    headers = {"Authorization": f"Bearer {api_key(user)}"}
    # when
    with httpx.stream(
        "POST",
        f"{gateway.llm_url}/chat/completions",
        json={**BODY, "stream": True},
        headers=headers,
        timeout=30,
    ) as response:
        text = response.read().decode()
    # then: the client is told, part of the text came through, and exactly that is charged
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    errors = [e["error"] for e in events if "error" in e]
    assert [e["code"] for e in errors] == ["upstream_timeout"]
    assert errors[0]["details"] == {"max_call_seconds": 1.0}
    streamed = sum(1 for e in events if e.get("choices"))
    assert 0 < streamed < 20
    row = CreditUsageAttribution.objects.get()
    assert row.output_tokens == streamed  # one "tok " per chunk
    reservation = CreditReservation.objects.get()
    assert reservation.status == CreditReservation.Status.SETTLED
    assert find_all_drifts() == []


def test_a_json_call_past_the_longest_call_is_504_and_charges_nothing(
    gateway, upstream, make_funded_member, settings
):
    settings.LLM_MAX_CALL_SECONDS = 0.5
    upstream.behaviour.latency = 2.0
    _, user, _ = make_funded_member()
    headers = {"Authorization": f"Bearer {api_key(user)}"}
    before = snapshot_balances()

    answer = httpx.post(f"{gateway.llm_url}/chat/completions", json=BODY, headers=headers, timeout=30)

    assert answer.status_code == 504, answer.text
    assert answer.json()["error"]["code"] == "upstream_timeout"
    assert CreditUsageAttribution.objects.count() == 0
    after = snapshot_balances()
    assert after["allocations"] == before["allocations"] and after["pools"] == before["pools"]
    assert find_all_drifts() == []
