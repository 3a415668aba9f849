"""Plan quotas: an organization's calls through the gateway, counted per UTC day and month on
the shared cache (``CACHES["default"]``; Redis in production, so every worker shares them).

``Plan.monthly_api_calls`` is the monthly quota (0 = unlimited). The daily quota is
``LLM_DAILY_QUOTA_PERCENT`` (default 10%) of it, rounded up, so one runaway script cannot use
a month's calls in a day. The plan is the organization's live (pending or active)
subscription's; an organization without one, and individual credits, have no quota. A call
refused by the ledger or failed upstream gives its count back.

While the cache is unavailable quotas fail open: the call is admitted uncounted (a warning is
logged) and still held, charged and attributed by the ledger, which lives in PostgreSQL. A quota
limits how many calls a plan includes, not money; refusing every call of every subscribed
organization because a counter cannot be reached would turn a cache outage into a gateway
outage. Counting resumes as soon as the cache answers again.
"""

import calendar
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from billing.errors import QuotaExceeded
from billing.models import OrganizationSubscription
from billing.models.subscriptions import LIVE_SUBSCRIPTION_STATUSES
from billing.services.gateway_calls.config import setting
from orgbilling.cache import CACHE_ERRORS, optional_get, optional_set, report_cache_failure

LIVE = LIVE_SUBSCRIPTION_STATUSES
_NO_PLAN = -1  # cached "no live subscription", distinct from a cache miss


@dataclass(frozen=True)
class QuotaTicket:
    """The counters one call took, to give back if the call is not made."""

    keys: tuple[str, ...]

    def give_back(self) -> None:
        for key in self.keys:
            try:
                cache.decr(key)
            except ValueError:  # the period rolled over: nothing to give back
                pass
            except CACHE_ERRORS as error:  # the call stays counted: at worst one call too many
                report_cache_failure("plan quotas", error, "a count not given back")


def monthly_quota(org_id: str) -> tuple[int, str]:
    """(monthly calls, plan code) of the org's live plan; (0, "") for unlimited / no plan."""
    cache_key = f"llm-quota-plan:{org_id}"
    cached = optional_get(cache_key, consumer="plan quotas")
    if cached is None:
        plan = (
            OrganizationSubscription.objects.filter(org_id=org_id, status__in=LIVE)
            .order_by("-created_at")
            .values_list("plan__monthly_api_calls", "plan__plan_code")
            .first()
        )
        cached = plan if plan is not None else (_NO_PLAN, "")
        optional_set(cache_key, cached, setting("LLM_QUOTA_PLAN_CACHE_SECONDS"), consumer="plan quotas")
    calls, code = cached
    return (0, "") if calls == _NO_PLAN else (int(calls), str(code))


def _count(key: str, ttl: int) -> int:
    for _ in range(3):
        cache.add(key, 0, ttl)
        try:
            return int(cache.incr(key))
        except ValueError:  # expired between add and incr
            continue
    raise RuntimeError(f"cache counter {key} keeps vanishing")  # pragma: no cover


def take_quota(*, org_id: str | None, now: datetime | None = None) -> QuotaTicket | None:
    """Count one call against the org's plan quotas; ``quota_exceeded`` (429) when a quota is
    used up, with ``Retry-After`` until the period that ran out resets."""
    if org_id is None:
        return None
    monthly, plan_code = monthly_quota(org_id)
    if not monthly:
        return None
    now = now or timezone.now()
    daily = math.ceil(monthly * setting("LLM_DAILY_QUOTA_PERCENT") / 100)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    next_day = day_start + timedelta(days=1)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    next_month = day_start.replace(day=1) + timedelta(days=days_in_month)
    periods = (
        ("day", f"llm-quota:{org_id}:d:{now:%Y%m%d}", daily, next_day),
        ("month", f"llm-quota:{org_id}:m:{now:%Y%m}", monthly, next_month),
    )
    taken: list[str] = []
    for period, key, limit, resets_at in periods:
        seconds_left = max(1, math.ceil((resets_at - now).total_seconds()))
        try:
            count = _count(key, seconds_left + 3600)
        except CACHE_ERRORS as error:
            report_cache_failure("plan quotas", error, "calls admitted without counting them")
            QuotaTicket(tuple(taken)).give_back()
            return None
        taken.append(key)
        if count > limit:
            QuotaTicket(tuple(taken)).give_back()
            name = "daily" if period == "day" else "monthly"
            raise QuotaExceeded(
                f"The plan's {name} quota of {limit} API calls is used up.",
                retry_after=seconds_left,
                details={"org_id": org_id, "plan": plan_code, "period": period, "limit": limit},
            )
    return QuotaTicket(tuple(taken))
