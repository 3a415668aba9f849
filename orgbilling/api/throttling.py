"""Rate limits on the shared cache (DESIGN.md §6): GET 100/min, POST 20/min, subscription
changes 5/hour, per user (per IP when anonymous), configurable in ``settings.API_RATE_LIMITS``.

Each throttle leaves its figures on the request; ``RateLimitHeadersMiddleware`` reports the
tightest as ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``.

While the shared cache is unavailable the limits are counted in this process instead (the same
rates, per process), with a warning in the log: requests keep being served and a single client
still cannot flood a process; the shared counts resume when the cache answers again.
"""

import time
from typing import Any

from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest, HttpResponse
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from orgbilling.cache import CACHE_ERRORS, report_cache_failure
from orgbilling.middleware import RequestResponseMiddleware

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Where the limits are counted while the shared cache is down: this process's memory.
LOCAL_RATE_LIMITS = LocMemCache("orgbilling-rate-limits", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


class _ReportingThrottle(SimpleRateThrottle):
    scope_name = ""

    def __init__(self) -> None:
        # Read the rate per request so settings changes (and tests) take effect at once.
        pass

    def applies_to(self, request: Request) -> bool:
        return True

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope_name, "ident": ident}

    def allow_request(self, request: Request, view: Any) -> bool:
        if not self.applies_to(request):
            return True
        self.rate = settings.API_RATE_LIMITS.get(self.scope_name)
        if not self.rate:
            return True
        limit, duration = self.parse_rate(self.rate)
        if limit is None or duration is None:
            return True
        self.num_requests, self.duration = limit, duration
        try:
            allowed = super().allow_request(request, view)
        except CACHE_ERRORS as error:
            report_cache_failure("rate limits", error, "counting them per process until it is back")
            self.cache = LOCAL_RATE_LIMITS
            allowed = super().allow_request(request, view)
        remaining = max(0, limit - len(self.history))
        reset = int(self.history[-1] + duration - self.now) if self.history else duration
        figures = (limit, remaining, max(0, reset), int(time.time()) + max(0, reset))
        current = getattr(request._request, "rate_limit", None)
        if current is None or figures[1] < current[1]:
            request._request.rate_limit = figures  # type: ignore[attr-defined]
        return allowed


class ReadThrottle(_ReportingThrottle):
    scope_name = "read"

    def applies_to(self, request: Request) -> bool:
        return request.method in SAFE_METHODS


class WriteThrottle(_ReportingThrottle):
    scope_name = "write"

    def applies_to(self, request: Request) -> bool:
        return request.method not in SAFE_METHODS


class SubscriptionChangeThrottle(_ReportingThrottle):
    """Added by the subscription-changing views on top of the defaults."""

    scope_name = "subscription"

    def applies_to(self, request: Request) -> bool:
        return request.method not in SAFE_METHODS


class RateLimitHeadersMiddleware(RequestResponseMiddleware):
    """Copies the throttle's figures onto the response. Sync and async (no thread hop under
    ASGI: it only touches the request and response objects)."""

    def after(self, request: HttpRequest, response: Any, state: Any) -> Any:
        return _with_rate_limit_headers(request, response)


def _with_rate_limit_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    figures = getattr(request, "rate_limit", None)
    if figures is not None:
        limit, remaining, _seconds, reset_at = figures
        response["X-RateLimit-Limit"] = str(limit)
        response["X-RateLimit-Remaining"] = str(remaining)
        response["X-RateLimit-Reset"] = str(reset_at)
    return response
