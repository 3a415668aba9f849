"""A real OIDC provider for the SSO and bearer-token tests: ``oidc-provider-mock`` (Flask +
Authlib) served on loopback in a thread for the whole session; each test points the settings
at it. A test module imports ``keycloak_fixture`` and ``oidc_provider_fixture`` and asks for
the ``keycloak`` fixture.

The provider signs ID tokens with one RSA key (``Storage.jwk``, served at ``/jwks``, no ``kid``
in the token header); its access tokens are opaque. ``PUT /users/<sub>`` sets a user's claims,
``POST /users/<sub>/revoke-tokens`` revokes their tokens. Its code flow issues refresh tokens,
redeemable at the token endpoint until revoked.
"""

import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from organizations.auth.oidc import provider_keys

with warnings.catch_warnings():
    # authlib announces its own deprecations on import (and forces them on with an "always"
    # filter when first imported); they are the provider's business, not ours.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore")
    from authlib import jose
    from oidc_provider_mock import run_server_in_thread
    from oidc_provider_mock._storage import Storage, storage

CLIENT_ID = "orgbilling"
CLIENT_SECRET = "test-client-secret"
STAFF_ROLE = "orgbilling-admin"
CALLBACK_URL = "http://testserver/oidc/callback/"


@dataclass
class OidcProvider:
    base_url: str
    discovery: dict[str, Any]
    flask_app: Any

    @property
    def issuer(self) -> str:
        return str(self.discovery["issuer"])

    def endpoint(self, name: str) -> str:
        return str(self.discovery[name])

    def storage(self) -> Storage:
        """The provider's in-memory storage (keys, users, tokens); it lives behind a Flask
        request-local proxy, so open a request context to reach the object itself."""
        with self.flask_app.test_request_context():
            self.flask_app.preprocess_request()
            return storage._get_current_object()  # type: ignore[attr-defined]

    @property
    def signing_key(self) -> jose.RSAKey:
        return self.storage().jwk

    def set_signing_key(self, key: jose.RSAKey) -> None:
        self.storage().jwk = key

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        response = requests.put(f"{self.base_url}/users/{sub}", json=claims, timeout=5)
        assert response.status_code == 204, response.text

    def revoke_tokens(self, sub: str) -> None:
        response = requests.post(f"{self.base_url}/users/{sub}/revoke-tokens", timeout=5)
        assert response.status_code == 204, response.text

    def disable_user(self, sub: str) -> None:
        """What disabling a user (or ending their sessions) in Keycloak does to us: every token
        they hold, refresh tokens included, is refused from now on."""
        self.revoke_tokens(sub)

    def browser_sign_in(self, client: Any, sub: str, path: str = "/oidc/authenticate/") -> Any:
        """The whole SSO round trip for Django's test ``client``; the callback's response."""
        start = client.get(path)
        assert start.status_code == 302, start.content[:300]
        callback = urlsplit(self.authorize(start["Location"], sub))
        assert f"{callback.scheme}://{callback.netloc}{callback.path}" == CALLBACK_URL
        return client.get(f"{callback.path}?{callback.query}")

    def authorize(self, authorize_url: str, sub: str) -> str:
        """Sign ``sub`` in on the provider's login form; the redirect back to the client."""
        response = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=5)
        assert response.status_code == 302, response.text[:500]
        return response.headers["Location"]

    def issue_tokens(self, sub: str, scope: str = "openid email profile") -> dict[str, Any]:
        """The provider's real tokens for ``sub`` (code flow driven without Django)."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": CALLBACK_URL,
                "scope": scope,
                "state": uuid.uuid4().hex,
            }
        )
        location = self.authorize(f"{self.endpoint('authorization_endpoint')}?{query}", sub)
        code = parse_qs(urlsplit(location).query)["code"][0]
        response = requests.post(
            self.endpoint("token_endpoint"),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK_URL,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        key: jose.RSAKey | None = None,
        kid: str | None = "jwks",
        **overrides: Any,
    ) -> str:
        """An access-token-shaped JWT, RS256-signed with the provider's key (or ``key``).
        ``kid="jwks"`` puts the key's JWKS ``kid`` in the header; ``None`` leaves it out."""
        key = key or self.signing_key
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": [CLIENT_ID, "account"],
            "azp": CLIENT_ID,
            "sub": "jwt-user",
            "typ": "Bearer",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            **(claims or {}),
            **overrides,
        }
        payload = {name: value for name, value in payload.items() if value is not None}
        headers = {"kid": key.as_dict()["kid"] if kid == "jwks" else kid} if kid else {}
        private_key = jwt.PyJWK(key.as_dict(is_private=True), algorithm="RS256").key
        return jwt.encode(payload, private_key, algorithm="RS256", headers=headers)


def new_rsa_key() -> jose.RSAKey:
    """A fresh private RSA key, as the provider makes one (for rotation and forged tokens)."""
    return jose.RSAKey.generate_key(is_private=True)


def new_sub(prefix: str = "kc") -> str:
    """A fresh subject: the provider lives for the whole session, so tests never share one."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session", name="oidc_provider")
def oidc_provider_fixture() -> Iterator[OidcProvider]:
    with run_server_in_thread(port=0) as server:
        assert server.server_address[0] in ("127.0.0.1", "::1")  # loopback only
        base_url = f"http://localhost:{server.server_port}"
        discovery = requests.get(f"{base_url}/.well-known/openid-configuration", timeout=5).json()
        yield OidcProvider(base_url=base_url, discovery=discovery, flask_app=server.app)


@pytest.fixture(name="keycloak")
def keycloak_fixture(settings, oidc_provider: OidcProvider) -> Iterator[OidcProvider]:
    """Settings pointed at the provider from its discovery document, as a deployment would set
    them from the environment; the process-wide JWKS cache starts empty."""
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_AUDIENCE = CLIENT_ID
    settings.OIDC_ISSUER = oidc_provider.issuer
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = oidc_provider.endpoint("authorization_endpoint")
    settings.OIDC_OP_TOKEN_ENDPOINT = oidc_provider.endpoint("token_endpoint")
    settings.OIDC_OP_USER_ENDPOINT = oidc_provider.endpoint("userinfo_endpoint")
    settings.OIDC_OP_JWKS_ENDPOINT = oidc_provider.endpoint("jwks_uri")
    settings.OIDC_OP_LOGOUT_ENDPOINT = oidc_provider.endpoint("end_session_endpoint")
    settings.OIDC_VERIFY_KID = False  # the provider's ID tokens carry no kid
    settings.OIDC_STAFF_ROLE = STAFF_ROLE
    settings.OIDC_JWKS_MIN_REFRESH_SECONDS = 0
    provider_keys.reset()
    yield oidc_provider
    provider_keys.reset()
