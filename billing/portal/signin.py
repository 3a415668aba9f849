"""``/``: the sign-in page for visitors; people already signed in go to the portal.

With Keycloak configured (``OIDC_ENABLED``) the page offers the single sign-on button
(``/oidc/authenticate/``); without it, in development, Django's username and password form
(throttled by django-axes like every password sign-in). Signing out posts to ``/oidc/logout/``,
which ends the Keycloak session too (``organizations.auth.oidc.provider_logout_url``).
"""

from typing import Any

from django.conf import settings
from django.contrib.auth.views import LoginView


class SignInView(LoginView):
    template_name = "portal/signin.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["oidc_enabled"] = settings.OIDC_ENABLED
        return context
