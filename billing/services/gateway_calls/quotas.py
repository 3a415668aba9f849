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

With Redis as the cache a call's counts are one round trip (``_COUNT``, a Lua script): it reads
the cached plan, counts every bucket, and when one is over its limit takes all of the call's
counts back and names it, so the refusal and its ``Retry-After`` are the ones counted one bucket
at a time in the process (``LocMemCache``). There the plan is kept already resolved against
the tier table (``_Limits``), so a changed ``LLM_RATE_LIMIT_TIERS`` or
``LLM_DAILY_QUOTA_PERCENT`` applies once a cached plan expires. ``atake_quota`` and
``QuotaTicket.agive_back`` do the same on the event loop (``orgbilling.redis_scripts``).
"""

import calendar
import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import SynchronousOnlyOperation
from django.utils import timezone

from billing.errors import QuotaExceeded, RateLimitExceeded
from billing.models import OrganizationSubscription
from billing.models.subscriptions import LIVE_SUBSCRIPTION_STATUSES
from billing.services.gateway_calls.config import setting
from orgbilling.cache import CACHE_ERRORS, optional_get, optional_set, report_cache_failure
from orgbilling.redis_scripts import RedisScript, on_redis

logger = logging.getLogger(__name__)

LIVE = LIVE_SUBSCRIPTION_STATUSES
_NO_PLAN = -1  # cached "no live subscription", distinct from a cache miss
_COUNTERS_TTL_MARGIN = 3600  # a counter outlives its period by this long (seconds)
_LOCAL_CACHE = "django.core.cache.backends.locmem.LocMemCache"

# KEYS: the plan, then the request, token, day and month buckets. ARGV: the plan (resolved,
# ``_Limits.text``; "" to read the cached one), the plan's TTL, the call's tokens, then each
# bucket's TTL. Returns {-1} when no plan is cached (nothing counted), else {0 or the 1-based
# bucket that refused (nothing counted), the plan}.
_COUNT = RedisScript(
    r"""
local plan = ARGV[1]
if plan == '' then
  plan = redis.call('GET', KEYS[1])
  if not plan then return {-1} end
elseif tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], plan, 'EX', ARGV[2])
end
local rpm, tpm, daily, monthly = string.match(plan, '^(%d+)\n(%d+)\n(%d+)\n(%d+)\n')
if not rpm then return {-1} end
local limits = {tonumber(rpm), tonumber(tpm), tonumber(daily), tonumber(monthly)}
local deltas = {1, tonumber(ARGV[3]), 1, 1}
for i = 1, 4 do
  if limits[i] > 0 and deltas[i] > 0 then
    redis.call('SET', KEYS[i + 1], 0, 'EX', ARGV[3 + i], 'NX')
    if redis.call('INCRBY', KEYS[i + 1], deltas[i]) > limits[i] then
      for j = 1, i do
        if limits[j] > 0 and deltas[j] > 0 then redis.call('DECRBY', KEYS[j + 1], deltas[j]) end
      end
      return {i, plan}
    end
  end
end
return {0, plan}
"""
)
# KEYS: the counters a call took; ARGV: what it took of each. A counter gone (its period rolled
# over) is left alone, as ``cache.decr`` does.
_GIVE_BACK = RedisScript(
    """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('DECRBY', key, ARGV[i]) end
end
return 0
"""
)


def _counted_on_redis() -> bool:
    return on_redis(settings.CACHES["default"])


def counted_on_loop() -> bool:
    """``atake_quota`` does not block the event loop: the counters are in the process or behind
    the async Redis client."""
    backend = settings.CACHES["default"]["BACKEND"]
    return bool(backend == _LOCAL_CACHE or on_redis(settings.CACHES["default"]))


@dataclass(frozen=True)
class QuotaTicket:
    """The counters one call took, to give back if the call is not made."""

    keys: tuple[str, ...]
    tokens_key: str | None = None  # the minute's token bucket, given back ``tokens`` at once
    tokens: int = 0
    on_redis: bool = False  # counted by ``_COUNT``: given back in one round trip

    def _deltas(self) -> list[int]:
        return [self.tokens if key == self.tokens_key else 1 for key in self.keys]

    def give_back(self) -> None:
        if self.on_redis:
            try:
                _GIVE_BACK.run(self.keys, self._deltas())
            except CACHE_ERRORS as error:
                report_cache_failure("plan quotas", error, "a count not given back")
            return
        for key in self.keys:
            try:
                cache.decr(key, self.tokens if key == self.tokens_key else 1)
            except ValueError:  # the period rolled over: nothing to give back
                pass
            except CACHE_ERRORS as error:  # the call stays counted: at worst one call too many
                report_cache_failure("plan quotas", error, "a count not given back")

    async def agive_back(self) -> None:
        """``give_back`` on the event loop."""
        if not self.on_redis:
            self.give_back()  # in the process
            return
        try:
            await _GIVE_BACK.arun(self.keys, self._deltas())
        except CACHE_ERRORS as error:
            report_cache_failure("plan quotas", error, "a count not given back")


@dataclass(frozen=True)
class OrgPlan:
    monthly_calls: int  # 0: unlimited
    plan_code: str  # "" without a live subscription
    tier: str  # the plan's rate_limit_tier ("" without a live subscription)


def _plan_cache_key(org_id: str) -> str:
    return f"llm-quota-plan:v2:{org_id}"


def _limits_cache_key(org_id: str) -> str:
    """Where ``_COUNT`` keeps the org's plan, resolved (``_Limits.text``, not pickled)."""
    return f"llm-quota-plan:v3:{org_id}"


def _plan_row(org_id: str) -> tuple[int, str, str]:
    plan = (
        OrganizationSubscription.objects.filter(org_id=org_id, status__in=LIVE)
        .order_by("-created_at")
        .values_list("plan__monthly_api_calls", "plan__plan_code", "plan__rate_limit_tier")
        .first()
    )
    return plan if plan is not None else (_NO_PLAN, "", "")


def _org_plan(row: tuple[int, str, str]) -> OrgPlan:
    calls, code, tier = row
    return OrgPlan(monthly_calls=0 if calls == _NO_PLAN else int(calls), plan_code=str(code), tier=str(tier))


def org_plan(org_id: str) -> OrgPlan:
    """The org's live plan: monthly calls, code and rate-limit tier (cached)."""
    cache_key = _plan_cache_key(org_id)
    cached = optional_get(cache_key, consumer="plan quotas")
    if cached is None:
        cached = _plan_row(org_id)
        optional_set(cache_key, cached, setting("LLM_QUOTA_PLAN_CACHE_SECONDS"), consumer="plan quotas")
    return _org_plan(cached)


def forget_org_plan(org_id: str) -> None:
    """Drop the org's cached plan (after a subscription change commits): the next call reads it."""
    try:
        cache.delete_many([_plan_cache_key(org_id), _limits_cache_key(org_id)])
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


class _Limits(NamedTuple):
    """An org's plan resolved against the tier table: its limits (0: none), tier and code."""

    rpm: int
    tpm: int
    daily: int
    monthly: int
    tier: str
    plan_code: str

    @classmethod
    def of(cls, plan: OrgPlan) -> "_Limits":
        tier, rpm, tpm = tier_limits(plan.tier)
        monthly = plan.monthly_calls
        daily = math.ceil(monthly * setting("LLM_DAILY_QUOTA_PERCENT") / 100) if monthly else 0
        return cls(rpm=rpm, tpm=tpm, daily=daily, monthly=monthly, tier=tier, plan_code=plan.plan_code)

    def per_bucket(self) -> tuple[int, int, int, int]:
        """The limits of the request, token, day and month buckets, in ``_COUNT``'s order."""
        return self.rpm, self.tpm, self.daily, self.monthly

    def text(self) -> str:
        """What ``_COUNT`` keeps and reads: the four limits first, one a line."""
        return f"{self.rpm}\n{self.tpm}\n{self.daily}\n{self.monthly}\n{self.tier}\n{self.plan_code}"

    @classmethod
    def parse(cls, text: bytes) -> "_Limits":
        rpm, tpm, daily, monthly, tier, code = text.decode().split("\n", 5)
        return cls(
            rpm=int(rpm), tpm=int(tpm), daily=int(daily), monthly=int(monthly), tier=tier, plan_code=code
        )


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

    def seconds_left(self, now: datetime) -> int:
        return max(1, math.ceil((self.resets_at - now).total_seconds()))


def _minute_buckets(org_id: str, rpm: int, tpm: int, tokens: int, now: datetime) -> tuple[_Bucket, _Bucket]:
    minute = now.replace(second=0, microsecond=0)
    next_minute = minute + timedelta(minutes=1)
    return (
        _Bucket("minute", f"llm-rate:{org_id}:r:{minute:%Y%m%d%H%M}", rpm, next_minute),
        _Bucket("minute", f"llm-rate:{org_id}:t:{minute:%Y%m%d%H%M}", tpm, next_minute, tokens, "tokens"),
    )


def _plan_buckets(org_id: str, daily: int, monthly: int, now: datetime) -> tuple[_Bucket, _Bucket]:
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    next_month = day_start.replace(day=1) + timedelta(days=days_in_month)
    return (
        _Bucket("day", f"llm-quota:{org_id}:d:{now:%Y%m%d}", daily, day_start + timedelta(days=1)),
        _Bucket("month", f"llm-quota:{org_id}:m:{now:%Y%m}", monthly, next_month),
    )


def _buckets(org_id: str, limits: _Limits, tokens: int, now: datetime) -> list[_Bucket]:
    """The buckets a call counts, in order (a limit of 0, or no tokens, is not counted)."""
    buckets = []
    if limits.rpm or (limits.tpm and tokens > 0):
        requests, token_bucket = _minute_buckets(org_id, limits.rpm, limits.tpm, tokens, now)
        if limits.rpm:
            buckets.append(requests)
        if limits.tpm and tokens > 0:
            buckets.append(token_bucket)
    if limits.monthly:
        buckets.extend(_plan_buckets(org_id, limits.daily, limits.monthly, now))
    return buckets


def _refusal(bucket: _Bucket, *, org_id: str, limits: _Limits, seconds_left: int) -> QuotaExceeded:
    if bucket.period == "minute":
        return RateLimitExceeded(
            f"The organization's limit of {bucket.limit} {bucket.unit} a minute ({limits.tier} tier) "
            "is reached.",
            retry_after=seconds_left,
            details={
                "org_id": org_id,
                "plan": limits.plan_code,
                "tier": limits.tier,
                "period": "minute",
                "limit_kind": bucket.unit,
                "limit": bucket.limit,
            },
        )
    name = "daily" if bucket.period == "day" else "monthly"
    return QuotaExceeded(
        f"The plan's {name} quota of {bucket.limit} API calls is used up.",
        retry_after=seconds_left,
        details={"org_id": org_id, "plan": limits.plan_code, "period": bucket.period, "limit": bucket.limit},
    )


def take_quota(*, org_id: str | None, tokens: int = 0, now: datetime | None = None) -> QuotaTicket | None:
    """Count one call (and its ``tokens``) against the org's tier limits per minute and its
    plan's quotas per day and month: ``rate_limit_exceeded`` / ``quota_exceeded`` (429) when one
    is reached, with ``Retry-After`` until that period resets (the call's counts given back)."""
    if org_id is None:
        return None
    now = now or timezone.now()
    if _counted_on_redis():
        call = _RedisCount(org_id, tokens, now)
        try:
            result = _COUNT.run(call.keys, call.args(""))
            if result[0] == _MISSING:
                result = _COUNT.run(call.keys, call.args(_Limits.of(_org_plan(_plan_row(org_id))).text()))
        except CACHE_ERRORS as error:
            report_cache_failure("plan quotas", error, "calls admitted without counting them")
            return None
        return call.ticket(result)
    limits = _Limits.of(org_plan(org_id))
    buckets = _buckets(org_id, limits, tokens, now)
    if not buckets:
        return None
    tokens_key = next((b.key for b in buckets if b.unit == "tokens"), None)
    taken: list[str] = []

    def ticket() -> QuotaTicket:
        return QuotaTicket(tuple(taken), tokens_key=tokens_key, tokens=tokens)

    for bucket in buckets:
        seconds_left = max(1, math.ceil((bucket.resets_at - now).total_seconds()))
        try:
            count = _count(bucket.key, seconds_left + _COUNTERS_TTL_MARGIN, bucket.delta)
        except CACHE_ERRORS as error:
            report_cache_failure("plan quotas", error, "calls admitted without counting them")
            ticket().give_back()
            return None
        taken.append(bucket.key)
        if count > bucket.limit:
            ticket().give_back()
            raise _refusal(bucket, org_id=org_id, limits=limits, seconds_left=seconds_left)
    return ticket()


async def atake_quota(
    *, org_id: str | None, tokens: int = 0, now: datetime | None = None
) -> QuotaTicket | None:
    """``take_quota`` on the event loop (``counted_on_loop()``). A plan not cached is read from
    the database, which raises ``SynchronousOnlyOperation`` here (nothing counted): the caller
    takes the call to the threads."""
    if org_id is None or not _counted_on_redis():
        return take_quota(org_id=org_id, tokens=tokens, now=now)
    call = _RedisCount(org_id, tokens, now or timezone.now())
    try:
        result = await _COUNT.arun(call.keys, call.args(""))
    except CACHE_ERRORS as error:
        report_cache_failure("plan quotas", error, "calls admitted without counting them")
        return None
    if result[0] == _MISSING:  # read by the threads, which count the call then
        raise SynchronousOnlyOperation("the organization's plan is not cached: read it on the threads")
    return call.ticket(result)


_MISSING = -1  # ``_COUNT`` found no plan cached


class _RedisCount:
    """One call's ``_COUNT``: its keys and arguments, and the ticket or refusal it answered."""

    def __init__(self, org_id: str, tokens: int, now: datetime) -> None:
        self.org_id = org_id
        self.tokens = tokens
        self.now = now
        self.buckets = _minute_buckets(org_id, 0, 0, tokens, now) + _plan_buckets(org_id, 0, 0, now)
        self.keys = [_limits_cache_key(org_id), *(b.key for b in self.buckets)]

    def args(self, plan: str) -> list[object]:
        ttls = [b.seconds_left(self.now) + _COUNTERS_TTL_MARGIN for b in self.buckets]
        return [plan, setting("LLM_QUOTA_PLAN_CACHE_SECONDS"), self.tokens, *ttls]

    def ticket(self, result: list[object]) -> QuotaTicket | None:
        refused, text = result
        assert isinstance(text, bytes)
        limits = _Limits.parse(text)
        buckets = [
            replace(b, limit=limit) for b, limit in zip(self.buckets, limits.per_bucket(), strict=True)
        ]
        if refused:  # nothing of the call is counted
            bucket = buckets[int(refused) - 1]  # type: ignore[call-overload]
            raise _refusal(
                bucket, org_id=self.org_id, limits=limits, seconds_left=bucket.seconds_left(self.now)
            )
        counted = [b for b in buckets if b.limit and b.delta > 0]
        if not counted:
            return None
        tokens_key = next((b.key for b in counted if b.unit == "tokens"), None)
        return QuotaTicket(
            tuple(b.key for b in counted), tokens_key=tokens_key, tokens=self.tokens, on_redis=True
        )
