"""OIDC / Keycloak settings (placeholder until the OIDC module lands)."""
