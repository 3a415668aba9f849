"""Fixtures of the resilience tests: a Redis of the test's own, which it stops and starts; the
Lago stand-in and the OIDC provider of the payments and identity tests."""

from collections.abc import Iterator

import pytest

from tests.billing.payments.conftest import _lago_server, fake_lago  # noqa: F401 (fixtures)
from tests.oidc_provider import keycloak_fixture, oidc_provider_fixture  # noqa: F401 (fixtures)
from tests.redis_server import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real Redis, started; the test may stop, freeze and start it again."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.destroy()
