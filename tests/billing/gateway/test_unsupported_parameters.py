"""Parameters the gateway does not price are refused, not forwarded at the plain text price
(issue 11 §2: ``service_tier: "priority"``, audio output, web search…)."""

import httpx
import pytest

from tests.billing.gateway.conftest import MODEL, api_key
from tests.helpers import snapshot_balances

pytestmark = pytest.mark.usefixtures("model_price")
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "four words of prompt"}], "max_tokens": 20}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"service_tier": "priority"}, ["service_tier"]),
        (
            {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
            ["audio", "modalities"],
        ),
        ({"web_search_options": {}}, ["web_search_options"]),
        ({"prediction": {"type": "content", "content": "x"}}, ["prediction"]),
    ],
    ids=["priority-tier", "audio-output", "web-search", "predicted-output"],
)
def test_an_unpriced_parameter_is_400_and_nothing_goes_upstream(
    gateway, upstream, make_funded_member, extra, named
):
    _, user, _ = make_funded_member()
    headers = {"Authorization": f"Bearer {api_key(user)}"}
    before = snapshot_balances()

    answer = httpx.post(f"{gateway.llm_url}/chat/completions", json={**CHAT, **extra}, headers=headers)

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["details"]) == ("unsupported_parameter", {"parameters": named})
    assert upstream.behaviour.requests == []
    assert snapshot_balances() == before


def test_the_plain_values_of_those_parameters_are_forwarded(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    headers = {"Authorization": f"Bearer {api_key(user)}"}
    body = {**CHAT, "service_tier": "auto", "modalities": ["text"], "temperature": 0.2, "seed": 7}

    answer = httpx.post(f"{gateway.llm_url}/chat/completions", json=body, headers=headers)

    assert answer.status_code == 200, answer.text
    assert upstream.behaviour.requests[0]["service_tier"] == "auto"


def test_an_unpriced_image_parameter_is_400(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    headers = {"Authorization": f"Bearer {api_key(user)}"}

    answer = httpx.post(
        f"{gateway.llm_url}/images/generations",
        json={"model": MODEL, "prompt": "a cat", "background": "transparent"},
        headers=headers,
    )

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["details"] == {"parameters": ["background"]}
    assert upstream.behaviour.requests == []
