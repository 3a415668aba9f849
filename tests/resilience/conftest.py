"""Fixtures of the resilience tests: a Redis of the test's own, which it stops and starts; the
Lago stand-in and the OIDC provider of the payments and identity tests."""

from tests.billing.payments.conftest import _lago_server, fake_lago  # noqa: F401 (fixtures)
from tests.oidc_provider import keycloak_fixture, oidc_provider_fixture  # noqa: F401 (fixtures)
from tests.redis_server import redis_server  # noqa: F401 (fixture)
