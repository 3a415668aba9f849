"""Bearer-token authentication (placeholder until the OIDC module lands)."""

from typing import Any

from rest_framework.authentication import BaseAuthentication


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Any) -> None:
        return None
