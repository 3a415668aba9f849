"""Shared REST API machinery: errors, parsing, amounts, pagination, throttles, idempotency."""
