"""Root URL configuration."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from orgbilling.observability.views import metrics, readyz
from orgbilling.views import healthz

admin.site.site_header = "orgbilling operations"
admin.site.site_title = "orgbilling"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    # Local session sign-in for browsers and curl (Keycloak SSO is under /oidc/ when configured).
    path("api-auth/", include("rest_framework.urls")),
    # Keycloak SSO: /oidc/authenticate/, /oidc/callback/, /oidc/logout/ (404 until configured).
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("organizations.urls")),
    # The portal (/ and /portal/), /api/v1/org-billing/, /api/v1/llm/ and /api/v1/webhooks/: every
    # billing route is in billing/urls.py.
    path("", include("billing.urls")),
]

handler400 = "orgbilling.api.exceptions.json_or_html_400"
handler404 = "orgbilling.api.exceptions.json_or_html_404"
handler500 = "orgbilling.api.exceptions.json_or_html_500"
