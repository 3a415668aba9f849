"""Readiness (/readyz), Prometheus metrics (/metrics), structured logs and the request id.

Settings: ``orgbilling/settings/observability.py``; the README's "Readiness, metrics and logs".
"""
