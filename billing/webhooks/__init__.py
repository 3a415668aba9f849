"""Signed webhooks from Lago and Stripe: verified, stored raw (``WebhookEvent``), then processed
once. URLs under ``/api/v1/webhooks/``."""
