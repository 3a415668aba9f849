"""Fixtures of the organizations tests: the local OpenID Connect provider standing in for
Keycloak (``oidc_provider``, once per session; ``keycloak``, settings pointing at it)."""

from tests.oidc_provider import keycloak_fixture, oidc_provider_fixture  # noqa: F401 (fixtures)
