"""How callers prove who they are: API keys, bearer tokens (Keycloak), OIDC browser sign-in."""
