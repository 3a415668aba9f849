"""Refusals of an incoming webhook (nothing is stored for any of them)."""

from orgbilling.errors import ServiceUnavailable, ValidationFailed


class InvalidWebhookSignature(ValidationFailed):
    code = "invalid_signature"
    default_message = "The webhook signature is missing, malformed, stale or wrong."


class MalformedWebhook(ValidationFailed):
    code = "malformed_webhook"
    default_message = "The webhook body is not a valid event."


class WebhookNotConfigured(ServiceUnavailable):
    code = "webhook_not_configured"
    default_message = "This webhook is not configured on the server; it cannot be verified."
