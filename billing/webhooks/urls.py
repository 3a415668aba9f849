"""``/api/v1/webhooks/lago`` and ``/api/v1/webhooks/stripe``."""

from django.urls import path

from billing.webhooks.views import lago_webhook, stripe_webhook

urlpatterns = [
    path("lago", lago_webhook, name="webhook-lago"),
    path("stripe", stripe_webhook, name="webhook-stripe"),
]
