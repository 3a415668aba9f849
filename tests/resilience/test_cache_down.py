"""The lookups cached in Redis while it is unreachable, and the cache's circuit breaker on a
Redis that hangs: a cache that cannot be used is a miss, never an error, and costs one short
timeout per interval, not one per call."""

import time
from collections.abc import Iterator

import pytest
import redis
from django.core.cache import cache
from rest_framework.test import APIClient

from billing.models import OrgBillingHistory
from orgbilling.cache import CacheUnavailable
from scripts.free_port import free_port
from tests.billing.payments.test_lago_webhooks import invoice_event, post
from tests.factories import OrganizationFactory
from tests.fakes.lago import _rsa_pair
from tests.helpers import assert_error
from tests.oidc_provider import new_sub
from tests.redis_server import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib")

KEY_PATH = "/api/v1/webhooks/json_public_key"


@pytest.fixture
def cache_unreachable(settings) -> None:
    """The cache is a Redis on a port nothing listens on (Django's own Redis backend)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/1",
        }
    }


@pytest.mark.django_db
def test_an_opaque_bearer_token_is_checked_at_the_provider_while_the_cache_is_down(
    keycloak, cache_unreachable
):
    sub = new_sub()
    token = keycloak.issue_tokens(sub)["access_token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert client.get("/api/v1/me").json()["user"]["user_id"] == sub
    # nothing was cached: a token revoked now is refused at once
    keycloak.revoke_tokens(sub)
    assert_error(client.get("/api/v1/me"), 401, "unauthenticated")


@pytest.mark.django_db
def test_lago_webhooks_are_verified_with_a_fresh_key_while_the_cache_is_down(
    client, fake_lago, cache_unreachable
):
    org = OrganizationFactory(id="hook-org")
    body = invoice_event(fake_lago, org.id)

    response = post(client, body, signature=fake_lago.jwt_signature(body), unique_key="uk-1")

    assert response.status_code == 200, response.content
    assert OrgBillingHistory.objects.get(org=org).event_type == "invoice"
    assert len(fake_lago.requests("GET", KEY_PATH)) == 1

    # a bad signature is refused, and the key just fetched is not fetched a second time
    forged = fake_lago.jwt_signature(body, private_key=_rsa_pair()[0])
    assert_error(post(client, body, signature=forged, unique_key="uk-2"), 400, "invalid_signature")
    assert len(fake_lago.requests("GET", KEY_PATH)) == 2


@pytest.fixture
def hung_redis(settings) -> Iterator[RedisServer]:
    """A real Redis behind ``orgbilling.cache.RedisCache`` (0.2 s timeouts, retried after 1 s),
    holding one key, then frozen: it accepts connections and never answers."""
    server = RedisServer()
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "orgbilling.cache.RedisCache",
            "LOCATION": server.url(1),
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2, "retry_after_failure": 1.0},
        }
    }
    cache.set("before", "hung")
    server.freeze()
    yield server
    server.destroy()


def test_a_hung_redis_costs_one_timeout_then_is_skipped_until_it_answers_again(hung_redis):
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        cache.get("before")
    assert time.monotonic() - started < 0.5  # its 0.2 s socket timeout

    started = time.monotonic()
    for _ in range(50):
        with pytest.raises(CacheUnavailable):
            cache.get("before")
    assert time.monotonic() - started < 0.1  # not tried: refused at once

    hung_redis.thaw()
    time.sleep(1.1)  # past the retry interval
    assert cache.get("before") == "hung"
