"""API-key authentication (placeholder until the API-key module lands)."""

from typing import Any

from rest_framework.authentication import BaseAuthentication


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Any) -> None:
        return None
