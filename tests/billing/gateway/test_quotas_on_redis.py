"""Plan quotas and tier limits counted in a real Redis (the production cache): one round trip per
call from a thread (``take_quota``) or from the event loop (``atake_quota``), the same counters
for both, the same refusals, give-backs and fail-open as counting one bucket at a time, and the
chat admission on the event loop with Redis."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
import redis
from django.core.cache import cache
from django.core.exceptions import SynchronousOnlyOperation

from billing.errors import QuotaExceeded, RateLimitExceeded
from billing.gateway import on_loop, pg
from billing.gateway.admission import admit_chat
from billing.models import Plan
from billing.services.gateway_calls import cache as gateway_cache
from billing.services.gateway_calls.holds import settle_call, settlement_terms
from billing.services.gateway_calls.quotas import QuotaTicket, atake_quota, take_quota
from billing.services.subscriptions import change_subscription_plan, create_subscription
from tests.billing.gateway.conftest import api_key, chat_request
from tests.factories import UserFactory
from tests.redis_server import RedisServer
from tests.round_trips import client_commands

pytestmark = pytest.mark.django_db(transaction=True)

TIERS = {"tiny": {"rpm": 3, "tpm": 1_000}, "open": {"rpm": 0, "tpm": 0}}
NOON = datetime(2026, 3, 10, 12, 0, 5, tzinfo=UTC)
KEY_PREFIX = "quota-test"


@pytest.fixture
def on_redis(settings, redis_server: RedisServer) -> redis.Redis:
    """The cache is the real Redis (with a key prefix and a version, as a deployment may set);
    returns a plain client of the same database to look at it."""
    settings.CACHES = {
        "default": {
            "BACKEND": "orgbilling.cache.RedisCache",
            "LOCATION": redis_server.url(1),
            "KEY_PREFIX": KEY_PREFIX,
            "VERSION": 3,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, "retry_after_failure": 1.0},
        }
    }
    settings.LLM_RATE_LIMIT_TIERS = TIERS
    settings.LLM_DEFAULT_RATE_LIMIT_TIER = "tiny"
    return redis.Redis.from_url(redis_server.url(1))


def subscribe(org, *, monthly_calls: int = 0, tier: str = "tiny") -> None:
    code = f"redis-{monthly_calls}-{tier}"
    Plan.objects.get_or_create(
        plan_code=code,
        defaults={
            "name": code,
            "monthly_price": 1,
            "monthly_api_calls": monthly_calls,
            "rate_limit_tier": tier,
        },
    )
    ops = UserFactory(is_staff=True)
    create_subscription(org_id=org.id, plan_code=code, owner=ops, actor=ops)


def sync_take(**kwargs) -> QuotaTicket | None:
    return take_quota(**kwargs)


def async_take(**kwargs) -> QuotaTicket | None:
    """On the loop; as the gateway does, on a thread when the plan is not cached yet."""
    try:
        return asyncio.run(atake_quota(**kwargs))
    except SynchronousOnlyOperation:
        return take_quota(**kwargs)


def sync_give_back(ticket: QuotaTicket) -> None:
    ticket.give_back()


def async_give_back(ticket: QuotaTicket) -> None:
    asyncio.run(ticket.agive_back())


PATHS = pytest.mark.parametrize(
    ("take", "give_back"),
    [(sync_take, sync_give_back), (async_take, async_give_back)],
    ids=["thread", "loop"],
)


def counters(client: redis.Redis) -> dict[str, int]:
    """The org counters in Redis, by their names in the code (prefix and version removed)."""
    found = {}
    for key in client.scan_iter(f"{KEY_PREFIX}:3:llm-*"):
        name = key.decode().removeprefix(f"{KEY_PREFIX}:3:")
        if not name.startswith("llm-quota-plan"):
            found[name] = int(client.get(key))
    return found


def test_a_call_counts_all_its_buckets_in_one_round_trip(on_redis, make_funded_member):
    # given: a plan with a monthly quota (day and month buckets) and a tier (requests, tokens)
    org, _, _ = make_funded_member()
    subscribe(org, monthly_calls=100)
    warm_up = take_quota(org_id=org.id, tokens=10, now=NOON)  # the plan read, the scripts loaded
    assert warm_up is not None
    warm_up.give_back()

    # when
    with client_commands(on_redis) as counting:
        ticket = take_quota(org_id=org.id, tokens=10, now=NOON)
    counted = counters(on_redis)
    assert ticket is not None
    with client_commands(on_redis) as giving:
        ticket.give_back()

    # then: one round trip each; the four counters counted, then given back
    assert counting == ["evalsha"]
    assert giving == ["evalsha"]
    assert counted == {
        f"llm-rate:{org.id}:r:202603101200": 1,
        f"llm-rate:{org.id}:t:202603101200": 10,
        f"llm-quota:{org.id}:d:20260310": 1,
        f"llm-quota:{org.id}:m:202603": 1,
    }
    assert set(counters(on_redis).values()) == {0}


def test_the_thread_and_the_loop_count_the_same_counters(on_redis, make_funded_member):
    org, _, _ = make_funded_member()
    subscribe(org)  # tiny: 3 requests a minute

    sync_take(org_id=org.id, tokens=5, now=NOON)
    async_take(org_id=org.id, tokens=5, now=NOON)
    sync_take(org_id=org.id, tokens=5, now=NOON)
    with pytest.raises(RateLimitExceeded):
        async_take(org_id=org.id, tokens=5, now=NOON)

    # one counter per bucket, under Django's own key (prefix, version), read back by the cache
    assert counters(on_redis) == {
        f"llm-rate:{org.id}:r:202603101200": 3,
        f"llm-rate:{org.id}:t:202603101200": 15,
    }
    assert cache.get(f"llm-rate:{org.id}:r:202603101200") == 3


@PATHS
def test_a_refusal_counts_nothing_and_says_which_limit_and_until_when(
    on_redis, make_funded_member, take, give_back
):
    # given: 20 calls a month, so 2 a day; the tier allows 3 requests and 1000 tokens a minute
    org, _, _ = make_funded_member()
    subscribe(org, monthly_calls=20)
    take(org_id=org.id, tokens=100, now=NOON)
    take(org_id=org.id, tokens=100, now=NOON)

    # when: the day's quota is used up
    with pytest.raises(QuotaExceeded) as day:
        take(org_id=org.id, tokens=100, now=NOON)
    # and, the next day, a call asking more tokens than the minute allows
    tomorrow = NOON.replace(day=11)
    with pytest.raises(RateLimitExceeded) as tokens:
        take(org_id=org.id, tokens=1_001, now=tomorrow)

    # then
    assert day.value.retry_after == 12 * 3600 - 5
    assert day.value.details == {
        "org_id": org.id,
        "plan": "redis-20-tiny",
        "period": "day",
        "limit": 2,
        "retry_after_seconds": day.value.retry_after,
    }
    assert tokens.value.details["limit_kind"] == "tokens"
    assert tokens.value.details["tier"] == "tiny"
    assert tokens.value.retry_after == 55
    assert counters(on_redis) == {  # the refused calls' counts were all taken back
        f"llm-rate:{org.id}:r:202603101200": 2,
        f"llm-rate:{org.id}:t:202603101200": 200,
        f"llm-quota:{org.id}:d:20260310": 2,
        f"llm-quota:{org.id}:m:202603": 2,
        f"llm-rate:{org.id}:r:202603111200": 0,
        f"llm-rate:{org.id}:t:202603111200": 0,
    }


@PATHS
def test_a_ticket_given_back_uncounts_the_call_and_a_rolled_over_period_is_left_alone(
    on_redis, make_funded_member, take, give_back
):
    org, _, _ = make_funded_member()
    subscribe(org, monthly_calls=100)
    kept = take(org_id=org.id, tokens=7, now=NOON)
    returned = take(org_id=org.id, tokens=7, now=NOON)
    assert kept is not None and returned is not None

    give_back(returned)
    on_redis.delete(f"{KEY_PREFIX}:3:llm-rate:{org.id}:r:202603101200")  # as if its minute expired
    give_back(kept)

    assert counters(on_redis) == {
        f"llm-rate:{org.id}:t:202603101200": 0,
        f"llm-quota:{org.id}:d:20260310": 0,
        f"llm-quota:{org.id}:m:202603": 0,
    }


@PATHS
def test_counters_expire_an_hour_after_their_period(on_redis, make_funded_member, take, give_back):
    org, _, _ = make_funded_member()
    subscribe(org, monthly_calls=100)
    take(org_id=org.id, tokens=7, now=NOON)

    def ttl(name: str) -> int:
        return int(on_redis.ttl(f"{KEY_PREFIX}:3:{name}"))

    assert ttl(f"llm-rate:{org.id}:r:202603101200") == 55 + 3600
    assert ttl(f"llm-quota:{org.id}:d:20260310") == 12 * 3600 - 5 + 3600
    assert ttl(f"llm-quota:{org.id}:m:202603") == (21 * 24 + 12) * 3600 - 5 + 3600


def test_a_plan_change_applies_to_the_next_call(on_redis, make_funded_member, settings):
    settings.LLM_QUOTA_PLAN_CACHE_SECONDS = 3600
    org, _, _ = make_funded_member()
    subscribe(org)  # tiny
    Plan.objects.create(
        plan_code="open", name="open", monthly_price=2, monthly_api_calls=0, rate_limit_tier="open"
    )
    for _ in range(3):
        take_quota(org_id=org.id, now=NOON)
    with pytest.raises(RateLimitExceeded):
        take_quota(org_id=org.id, now=NOON)

    change_subscription_plan(org_id=org.id, plan_code="open", actor_label="test")

    assert take_quota(org_id=org.id, now=NOON) is None  # no limit left to count
    assert async_take(org_id=org.id, now=NOON) is None


def test_on_the_loop_a_plan_not_cached_is_left_to_the_threads(on_redis, make_funded_member):
    org, _, _ = make_funded_member()
    subscribe(org)

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(atake_quota(org_id=org.id, now=NOON))
    assert counters(on_redis) == {}  # nothing counted for the try on the loop
    take_quota(org_id=org.id, now=NOON)
    assert async_take(org_id=org.id, now=NOON) is not None
    assert counters(on_redis)[f"llm-rate:{org.id}:r:202603101200"] == 2


async def _take_while_ticking(take: Callable[[], Awaitable[object]]) -> tuple[object, float, int]:
    """``take()``'s answer, how long it took, and how often a 10 ms ticker ran meanwhile."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        answer = await take()
    finally:
        took = time.monotonic() - started
        ticking.cancel()
    return answer, took, ticks


def test_a_hung_redis_holds_a_call_on_the_loop_one_timeout_then_it_is_admitted_uncounted(
    on_redis, redis_server, make_funded_member, caplog
):
    # given: the plan is cached, then Redis hangs (accepts connections, never answers)
    org, _, _ = make_funded_member()
    subscribe(org)
    take_quota(org_id=org.id, now=NOON)
    redis_server.freeze()
    try:
        with caplog.at_level(logging.WARNING):
            # when: a call is counted on the loop
            ticket, took, ticks = asyncio.run(
                _take_while_ticking(lambda: atake_quota(org_id=org.id, now=NOON))
            )
            # and the next one, while the breaker is open
            again, again_took, _ = asyncio.run(
                _take_while_ticking(lambda: atake_quota(org_id=org.id, now=NOON))
            )
    finally:
        redis_server.thaw()

    # then: one socket timeout, the loop kept running meanwhile, the call admitted uncounted
    assert ticket is None and again is None
    assert 0.45 <= took < 1.2
    assert ticks >= 20
    assert again_took < 0.05  # the breaker is open: not tried again yet
    assert "unavailable (TimeoutError" in caplog.text


@PATHS
def test_with_redis_stopped_calls_are_admitted_uncounted(
    on_redis, redis_server, make_funded_member, take, give_back
):
    org, _, _ = make_funded_member()
    subscribe(org, monthly_calls=20)
    ticket = take(org_id=org.id, now=NOON)
    assert ticket is not None
    redis_server.stop()

    assert [take(org_id=org.id, now=NOON) for _ in range(5)] == [None] * 5
    give_back(ticket)  # not given back, not raised


async def _admit_twice_on_the_loop(raw_key: str):
    try:
        first = await on_loop.admit_chat(chat_request(raw_key))
        assert first is not None
        await on_loop.settle(settlement_terms(first[0], cost=1))
        return await on_loop.admit_chat(chat_request(raw_key))
    finally:
        await pg.close_pools()


@pytest.mark.usefixtures("model_price")
def test_with_redis_a_warm_chat_call_is_admitted_on_the_loop_and_counted(
    on_redis, settings, make_funded_member
):
    # given: the process's cache is warm (a call admitted on the threads)
    settings.LLM_GATEWAY_CACHE = True
    gateway_cache.clear()
    org, user, _ = make_funded_member()
    subscribe(org, monthly_calls=100)
    raw_key = api_key(user)
    admission, _, _ = admit_chat(chat_request(raw_key), byok=False)
    settle_call(admission, cost=1)

    # when
    admitted = asyncio.run(_admit_twice_on_the_loop(raw_key))

    # then: admitted on the loop, and all three calls counted in Redis
    assert admitted is not None
    assert admitted[0].quota is not None and admitted[0].quota.on_redis
    minute = datetime.now(UTC)
    assert counters(on_redis)[f"llm-quota:{org.id}:m:{minute:%Y%m}"] == 3
