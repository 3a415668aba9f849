"""OIDC / Keycloak settings: browser SSO (mozilla-django-oidc) and API bearer tokens.

Everything comes from the environment (docs/keycloak.md lists it). Give ``KEYCLOAK_REALM_URL``
and the Keycloak endpoints follow from it; any ``OIDC_OP_*`` variable overrides one of them
(another provider, or the test provider). OIDC is on when a client id, the issuer and every
endpoint it needs are known; otherwise Django's own login stays the way in.
"""

from orgbilling.settings.env import env

# https://keycloak.example.com/realms/acme — the realm's issuer; endpoints derive from it.
KEYCLOAK_REALM_URL: str = env("KEYCLOAK_REALM_URL", default="").rstrip("/")
_KEYCLOAK_OIDC = f"{KEYCLOAK_REALM_URL}/protocol/openid-connect" if KEYCLOAK_REALM_URL else ""


def _endpoint(variable: str, keycloak_path: str) -> str:
    return str(env(variable, default=f"{_KEYCLOAK_OIDC}/{keycloak_path}" if _KEYCLOAK_OIDC else ""))


OIDC_OP_AUTHORIZATION_ENDPOINT = _endpoint("OIDC_OP_AUTHORIZATION_ENDPOINT", "auth")
OIDC_OP_TOKEN_ENDPOINT = _endpoint("OIDC_OP_TOKEN_ENDPOINT", "token")
OIDC_OP_USER_ENDPOINT = _endpoint("OIDC_OP_USER_ENDPOINT", "userinfo")
OIDC_OP_JWKS_ENDPOINT = _endpoint("OIDC_OP_JWKS_ENDPOINT", "certs")
OIDC_OP_LOGOUT_ENDPOINT = _endpoint("OIDC_OP_LOGOUT_ENDPOINT", "logout")
OIDC_ISSUER: str = env("OIDC_ISSUER", default=KEYCLOAK_REALM_URL)

OIDC_RP_CLIENT_ID: str = env("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET: str = env("OIDC_RP_CLIENT_SECRET", default="")
# Provider-signed JWTs (ID tokens, Keycloak access tokens) must be RS256; nothing else is tried.
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES: str = env("OIDC_RP_SCOPES", default="openid email profile")
# Bearer access tokens must name this audience in `aud` (a Keycloak "Audience" mapper adds it).
OIDC_AUDIENCE: str = env("OIDC_AUDIENCE", default=OIDC_RP_CLIENT_ID)

OIDC_ENABLED = bool(
    OIDC_RP_CLIENT_ID
    and OIDC_ISSUER
    and OIDC_OP_AUTHORIZATION_ENDPOINT
    and OIDC_OP_TOKEN_ENDPOINT
    and OIDC_OP_USER_ENDPOINT
    and OIDC_OP_JWKS_ENDPOINT
)

# Authorization-code flow with PKCE (S256) and a nonce; the ID token is kept in the session for
# the end-session request (`id_token_hint`).
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True
OIDC_STORE_ACCESS_TOKEN = False
# Require a `kid` header on provider-signed JWTs (Keycloak always sends one). Off: a token
# without `kid` is tried against each signing key of the JWKS.
OIDC_VERIFY_KID: bool = env.bool("OIDC_VERIFY_KID", default=True)
OIDC_VERIFY_SSL: bool = env.bool("OIDC_VERIFY_SSL", default=True)
OIDC_TIMEOUT: float = env.float("OIDC_TIMEOUT", default=5.0)
OIDC_TOKEN_LEEWAY_SECONDS: int = env.int("OIDC_TOKEN_LEEWAY_SECONDS", default=30)
# The provider's keys are cached this long; an unknown `kid` refetches them, at most once per
# OIDC_JWKS_MIN_REFRESH_SECONDS (key rotation without letting forged tokens hammer the provider).
OIDC_JWKS_CACHE_SECONDS: int = env.int("OIDC_JWKS_CACHE_SECONDS", default=300)
OIDC_JWKS_MIN_REFRESH_SECONDS: int = env.int("OIDC_JWKS_MIN_REFRESH_SECONDS", default=10)
# Opaque (non-JWT) access tokens are checked at the userinfo endpoint; a good answer is reused
# for at most this long (capped at 60 s: a revoked token keeps working until then).
OIDC_USERINFO_CACHE_SECONDS: int = min(60, env.int("OIDC_USERINFO_CACHE_SECONDS", default=60))

# System admins (`is_staff`): users holding this realm role or group, read from these claims
# (dotted paths), granted and revoked at each sign-in and on each bearer token.
OIDC_STAFF_ROLE: str = env("OIDC_STAFF_ROLE", default="orgbilling-admin")
OIDC_STAFF_ROLE_CLAIMS: list[str] = env.list(
    "OIDC_STAFF_ROLE_CLAIMS", default=["realm_access.roles", "groups"]
)
# Optional: org memberships from groups such as `/orgs/<org_id>/admin` or `/orgs/<org_id>/member`.
OIDC_ORG_GROUPS_SYNC: bool = env.bool("OIDC_ORG_GROUPS_SYNC", default=False)
OIDC_ORG_GROUPS_CLAIM: str = env("OIDC_ORG_GROUPS_CLAIM", default="groups")
OIDC_ORG_GROUPS_PREFIX: str = env("OIDC_ORG_GROUPS_PREFIX", default="/orgs/")

# mozilla-django-oidc hooks: views that answer 404 while OIDC is off, and the end-session URL.
OIDC_AUTHENTICATE_CLASS = "organizations.auth.oidc.KeycloakAuthenticationRequestView"
OIDC_CALLBACK_CLASS = "organizations.auth.oidc.KeycloakAuthenticationCallbackView"
OIDC_OP_LOGOUT_URL_METHOD = "organizations.auth.oidc.provider_logout_url"

# Where the browser lands after signing in (the portal), after a refused sign-in and after
# signing out (the sign-in page). An SPA sets its own URLs; the post-logout one must be
# registered in the Keycloak client.
LOGIN_URL: str = env("LOGIN_URL", default="/")
LOGIN_REDIRECT_URL: str = env("LOGIN_REDIRECT_URL", default="/portal/")
LOGIN_REDIRECT_URL_FAILURE: str = env("LOGIN_REDIRECT_URL_FAILURE", default="/")
LOGOUT_REDIRECT_URL: str = env("LOGOUT_REDIRECT_URL", default="/")
