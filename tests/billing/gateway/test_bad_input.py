"""The gateway refuses input it cannot store or should not parse before it holds anything."""

import httpx
import pytest

from tests.billing.gateway.conftest import MODEL, api_key
from tests.helpers import snapshot_balances


@pytest.mark.usefixtures("model_price")
def test_the_gateway_refuses_nul_and_oversized_bodies_before_holding_anything(
    gateway, upstream, make_funded_member, settings
):
    _, user, _ = make_funded_member()
    headers = {"Authorization": f"Bearer {api_key(user)}", "Content-Type": "application/json"}
    url = f"{gateway.llm_url}/chat/completions"
    before = snapshot_balances()

    nul = httpx.post(
        url, content=b'{"model": "' + MODEL.encode() + b'\\u0000", "messages": []}', headers=headers
    )
    settings.LLM_MAX_BODY_BYTES = 5000
    big = httpx.post(
        url, json={"model": MODEL, "messages": [{"role": "user", "content": "x" * 6000}]}, headers=headers
    )

    assert nul.status_code == 400 and nul.json()["error"]["code"] == "validation_error"
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    assert "X-Request-Id" in nul.headers
    assert upstream.behaviour.requests == []
    assert snapshot_balances() == before
