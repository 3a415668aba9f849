"""The gateway's own ASGI handler: the LLM endpoints get a short middleware chain that runs on
the event loop, the rest of the site keeps Django's full ``MIDDLEWARE``."""

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from billing.gateway.asgi import GatewayASGIHandler
from organizations.services import create_api_key


def test_gateway_responses_carry_the_security_headers_but_not_the_sites_chain(gateway, make_funded_member):
    _, user, _ = make_funded_member()
    key = create_api_key(user=user, name="asgi")[1]
    gateway_response = httpx.get(f"{gateway.llm_url}/models", headers={"Authorization": f"Bearer {key}"})
    site_response = httpx.get(f"{gateway.url}/healthz")

    assert gateway_response.status_code == 200
    assert gateway_response.headers["X-Content-Type-Options"] == "nosniff"
    assert gateway_response.headers["Referrer-Policy"] == "same-origin"
    # Served by the gateway's handler: XFrameOptionsMiddleware is only in the site's chain.
    assert "X-Frame-Options" not in gateway_response.headers
    assert site_response.headers["X-Frame-Options"] == "DENY"


def test_an_unauthenticated_gateway_call_is_refused_in_the_error_shape(gateway):
    response = httpx.post(f"{gateway.llm_url}/chat/completions", json={"model": "m", "messages": []})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "middleware",
    [
        "django.middleware.csrf.CsrfViewMiddleware",  # has process_view
        "whitenoise.middleware.WhiteNoiseMiddleware",  # sync only
    ],
)
def test_the_gateway_chain_refuses_middleware_it_cannot_run(middleware):
    with override_settings(LLM_GATEWAY_MIDDLEWARE=[middleware]), pytest.raises(ImproperlyConfigured):
        GatewayASGIHandler()


def test_an_unknown_gateway_path_is_a_json_404_in_the_error_shape(gateway):
    response = httpx.get(f"{gateway.llm_url}/no-such-endpoint")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_host_outside_allowed_hosts_is_refused_by_the_gateway_too(gateway, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]

    response = httpx.get(f"{gateway.llm_url}/models", headers={"Host": "evil.example"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
