"""Root URL configuration."""

from django.contrib import admin
from django.urls import path

from orgbilling.views import healthz

admin.site.site_header = "orgbilling operations"
admin.site.site_title = "orgbilling"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
