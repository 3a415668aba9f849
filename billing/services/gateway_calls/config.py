"""The gateway's settings, read at each use so a change (or a test's override) applies at once.

They live in ``orgbilling/settings/gateway.py`` (star-imported by every settings module), so
every one is always there: a missing one is a configuration error, not a default.
"""

from typing import Any

from django.conf import settings


def setting(name: str) -> Any:
    return getattr(settings, name)


def max_call_seconds() -> float:
    """How long a call may run upstream: ``LLM_MAX_CALL_SECONDS``, or the hold's lifetime minus
    a minute (so a hold never expires under a live call)."""
    configured = float(setting("LLM_MAX_CALL_SECONDS"))
    if configured > 0:
        return configured
    return max(1.0, float(settings.CREDIT_RESERVATION_TTL_SECONDS) - 60.0)
