"""The gateway under test: the Django ASGI app served by uvicorn on loopback
(``tests/served_app.py``), a fake OpenAI-compatible upstream, and the official ``openai``
client pointed at the gateway.

The server opens its own database connections, so every test that calls it needs
``transactional_db`` (committed data, flushed afterwards).
"""

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.test import RequestFactory
from openai import OpenAI

from billing.models import ModelPrice
from organizations.models import User
from organizations.services import create_api_key
from tests.fake_upstream import FakeUpstream, running_upstream
from tests.redis_server import redis_server  # noqa: F401 (fixture)
from tests.served import served_in_thread

MODEL = "gw-test-model"
UPSTREAM_KEY = "sk-upstream-secret"


class GatewayServer:
    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def llm_url(self) -> str:
        return f"{self.url}/api/v1/llm"


@pytest.fixture(scope="session")
def gateway_server() -> Iterator[GatewayServer]:
    with served_in_thread() as url:
        yield GatewayServer(url)


@pytest.fixture
def upstream(settings) -> Iterator[FakeUpstream]:
    """A fake upstream the gateway forwards to, with our upstream key and a short timeout."""
    with running_upstream() as up:
        settings.LLM_UPSTREAM_BASE_URL = up.base_url
        settings.LLM_UPSTREAM_API_KEY = UPSTREAM_KEY
        settings.LLM_UPSTREAM_TIMEOUT_SECONDS = 5.0
        settings.LLM_DEFAULT_MAX_OUTPUT_TOKENS = 4096
        up.behaviour.hang_seconds = 3.0
        yield up


@pytest.fixture
def gateway(gateway_server, upstream, transactional_db) -> GatewayServer:
    """The running gateway, forwarding to ``upstream``, on a committed database."""
    return gateway_server


@pytest.fixture
def model_price(transactional_db) -> ModelPrice:
    """0.15 credits per 1k input tokens, 0.6 per 1k output (millicredit fractions round up)."""
    return ModelPrice.objects.create(
        model=MODEL,
        input_credits_per_million=Decimal("150"),
        output_credits_per_million=Decimal("600"),
        image_credits=Decimal("4"),
        image_prices={"1024x1024/hd": 8.0, "1024x1024/standard": 4.0},
        max_output_tokens=1000,
    )


def api_key(user: User, **kwargs) -> str:
    return create_api_key(user=user, name="gateway test", **kwargs)[1]


def openai_client(gateway: GatewayServer, key: str, **headers: str) -> OpenAI:
    return OpenAI(
        base_url=gateway.llm_url, api_key=key, max_retries=0, timeout=30, default_headers=headers or None
    )


def chat(client: OpenAI, prompt: str = "say something short please", **kwargs):
    """A non-streaming completion through ``with_raw_response``: (parsed, http response)."""
    raw = client.chat.completions.with_raw_response.create(
        model=kwargs.pop("model", MODEL), messages=[{"role": "user", "content": prompt}], **kwargs
    )
    return raw.parse(), raw


def allow_byok(settings, org) -> None:
    """BYOK on for the deployment and opted into by ``org`` (both are off by default)."""
    from organizations.models import Organization

    settings.LLM_BYOK_ENABLED = True
    Organization.objects.filter(pk=org.id).update(byok_enabled=True)


def chat_request(raw_key: str, max_tokens: int = 16):
    """A chat completion request as the gateway's views get it, for in-process tests."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": max_tokens}
    return RequestFactory().post(
        "/api/v1/llm/chat/completions",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw_key}",
    )
