"""Plan quotas and tier limits: an organization's calls through the gateway, counted per UTC
minute, day and month on the shared cache (``CACHES["default"]``; Redis in production, so every
worker shares them).

``Plan.rate_limit_tier`` names a row of ``LLM_RATE_LIMIT_TIERS``: the organization's requests
and tokens per minute (one bucket per org, whatever member or key calls; 0 = unlimited). A call
counts 1 request and ``tokens`` (the prompt estimate plus the output tokens its hold is sized
for: what the call may use, known before it goes upstream). An organization without a live
subscription, or whose plan names a tier not in the table, has ``LLM_DEFAULT_RATE_LIMIT_TIER``.
Beyond a limit: 429 ``rate_limit_exceeded`` with ``Retry-After`` until the next minute.

``Plan.monthly_api_calls`` is the monthly quota (0 = unlimited). The daily quota is
``LLM_DAILY_QUOTA_PERCENT`` (default 10%) of it, rounded up, so one runaway script cannot use
a month's calls in a day. The plan is the organization's live (pending or active)
subscription's; an organization without one, and individual credits, have no quota (individual
credits have no tier limit either). A call refused by the ledger or failed upstream gives its
counts back. The plan is cached for ``LLM_QUOTA_PLAN_CACHE_SECONDS``; the subscription services
drop the cached entry when they commit a change (``forget_org_plan``), so a plan change applies
to the next call.

While the cache is unavailable quotas fail open: the call is admitted uncounted (a warning is
logged) and still held, charged and attributed by the ledger, which lives in PostgreSQL. A quota
limits how many calls a plan includes, not money; refusing every call of every subscribed
organization because a counter cannot be reached would turn a cache outage into a gateway
outage. Counting resumes as soon as the cache answers again.
"""

import calendar
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from billing.errors import QuotaExceeded, RateLimitExceeded
from billing.models import OrganizationSubscription
from billing.models.subscriptions import LIVE_SUBSCRIPTION_STATUSES
from billing.services.gateway_calls.config import setting
from orgbilling.cache import CACHE_ERRORS, optional_get, optional_set, report_cache_failure

logger = logging.getLogger(__name__)

LIVE = LIVE_SUBSCRIPTION_STATUSES
_NO_PLAN = -1  # cached "no live subscription", distinct from a cache miss


@dataclass(frozen=True)
class QuotaTicket:
    """The counters one call took, to give back if the call is not made."""

    keys: tuple[str, ...]
    tokens_key: str | None = None  # the minute's token bucket, given back ``tokens`` at once
    tokens: int = 0

    def give_back(self) -> None:
        for key in self.keys:
            try:
                cache.decr(key, self.tokens if key == self.tokens_key else 1)
            except ValueError:  # the period rolled over: nothing to give back
                pass
            except CACHE_ERRORS as error:  # the call stays counted: at worst one call too many
                report_cache_failure("plan quotas", error, "a count not given back")


@dataclass(frozen=True)
class OrgPlan:
    monthly_calls: int  # 0: unlimited
    plan_code: str  # "" without a live subscription
    tier: str  # the plan's rate_limit_tier ("" without a live subscription)


def _plan_cache_key(org_id: str) -> str:
    return f"llm-quota-plan:v2:{org_id}"


def org_plan(org_id: str) -> OrgPlan:
    """The org's live plan: monthly calls, code and rate-limit tier (cached)."""
    cache_key = _plan_cache_key(org_id)
    cached = optional_get(cache_key, consumer="plan quotas")
    if cached is None:
        plan = (
            OrganizationSubscription.objects.filter(org_id=org_id, status__in=LIVE)
            .order_by("-created_at")
            .values_list("plan__monthly_api_calls", "plan__plan_code", "plan__rate_limit_tier")
            .first()
        )
        cached = plan if plan is not None else (_NO_PLAN, "", "")
        optional_set(cache_key, cached, setting("LLM_QUOTA_PLAN_CACHE_SECONDS"), consumer="plan quotas")
    calls, code, tier = cached
    return OrgPlan(monthly_calls=0 if calls == _NO_PLAN else int(calls), plan_code=str(code), tier=str(tier))


def forget_org_plan(org_id: str) -> None:
    """Drop the org's cached plan (after a subscription change commits): the next call reads it."""
    try:
        cache.delete(_plan_cache_key(org_id))
    except CACHE_ERRORS as error:  # the entry expires on its own within LLM_QUOTA_PLAN_CACHE_SECONDS
        report_cache_failure("plan quotas", error, "a changed plan applied late")


def monthly_quota(org_id: str) -> tuple[int, str]:
    """(monthly calls, plan code) of the org's live plan; (0, "") for unlimited / no plan."""
    plan = org_plan(org_id)
    return plan.monthly_calls, plan.plan_code


def tier_limits(tier: str) -> tuple[str, int, int]:
    """(tier, requests per minute, tokens per minute) of ``tier``, else of the default tier."""
    tiers = setting("LLM_RATE_LIMIT_TIERS")
    if tier not in tiers:
        if tier:
            logger.warning("plan tier %r is not in LLM_RATE_LIMIT_TIERS: the default tier applies", tier)
        tier = setting("LLM_DEFAULT_RATE_LIMIT_TIER")
    limits = tiers[tier]
    return tier, int(limits["rpm"]), int(limits["tpm"])


def _count(key: str, ttl: int, delta: int = 1) -> int:
    for _ in range(3):
        cache.add(key, 0, ttl)
        try:
            return int(cache.incr(key, delta))
        except ValueError:  # expired between add and incr
            continue
    raise RuntimeError(f"cache counter {key} keeps vanishing")  # pragma: no cover


@dataclass(frozen=True)
class _Bucket:
    period: str  # "minute" (tier limits), "day", "month" (plan quota)
    key: str
    limit: int
    resets_at: datetime
    delta: int = 1
    unit: str = "requests"


def _buckets(org_id: str, plan: OrgPlan, tokens: int, now: datetime) -> list[_Bucket]:
    _, rpm, tpm = tier_limits(plan.tier)
    minute = now.replace(second=0, microsecond=0)
    next_minute = minute + timedelta(minutes=1)
    buckets = []
    if rpm:
        buckets.append(_Bucket("minute", f"llm-rate:{org_id}:r:{minute:%Y%m%d%H%M}", rpm, next_minute))
    if tpm and tokens > 0:
        key = f"llm-rate:{org_id}:t:{minute:%Y%m%d%H%M}"
        buckets.append(_Bucket("minute", key, tpm, next_minute, delta=tokens, unit="tokens"))
    if plan.monthly_calls:
        monthly = plan.monthly_calls
        daily = math.ceil(monthly * setting("LLM_DAILY_QUOTA_PERCENT") / 100)
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        days_in_month = calendar.monthrange(now.year, now.month)[1]
        next_month = day_start.replace(day=1) + timedelta(days=days_in_month)
        buckets.append(
            _Bucket("day", f"llm-quota:{org_id}:d:{now:%Y%m%d}", daily, day_start + timedelta(days=1))
        )
        buckets.append(_Bucket("month", f"llm-quota:{org_id}:m:{now:%Y%m}", monthly, next_month))
    return buckets


def _refusal(bucket: _Bucket, *, org_id: str, plan: OrgPlan, seconds_left: int) -> QuotaExceeded:
    if bucket.period == "minute":
        tier = tier_limits(plan.tier)[0]
        return RateLimitExceeded(
            f"The organization's limit of {bucket.limit} {bucket.unit} a minute ({tier} tier) is reached.",
            retry_after=seconds_left,
            details={
                "org_id": org_id,
                "plan": plan.plan_code,
                "tier": tier,
                "period": "minute",
                "limit_kind": bucket.unit,
                "limit": bucket.limit,
            },
        )
    name = "daily" if bucket.period == "day" else "monthly"
    return QuotaExceeded(
        f"The plan's {name} quota of {bucket.limit} API calls is used up.",
        retry_after=seconds_left,
        details={"org_id": org_id, "plan": plan.plan_code, "period": bucket.period, "limit": bucket.limit},
    )


def take_quota(*, org_id: str | None, tokens: int = 0, now: datetime | None = None) -> QuotaTicket | None:
    """Count one call (and its ``tokens``) against the org's tier limits per minute and its
    plan's quotas per day and month: ``rate_limit_exceeded`` / ``quota_exceeded`` (429) when one
    is reached, with ``Retry-After`` until that period resets (the call's counts given back)."""
    if org_id is None:
        return None
    plan = org_plan(org_id)
    now = now or timezone.now()
    buckets = _buckets(org_id, plan, tokens, now)
    if not buckets:
        return None
    tokens_key = next((b.key for b in buckets if b.unit == "tokens"), None)
    taken: list[str] = []

    def ticket() -> QuotaTicket:
        return QuotaTicket(tuple(taken), tokens_key=tokens_key, tokens=tokens)

    for bucket in buckets:
        seconds_left = max(1, math.ceil((bucket.resets_at - now).total_seconds()))
        try:
            count = _count(bucket.key, seconds_left + 3600, bucket.delta)
        except CACHE_ERRORS as error:
            report_cache_failure("plan quotas", error, "calls admitted without counting them")
            ticket().give_back()
            return None
        taken.append(bucket.key)
        if count > bucket.limit:
            ticket().give_back()
            raise _refusal(bucket, org_id=org_id, plan=plan, seconds_left=seconds_left)
    return ticket()
