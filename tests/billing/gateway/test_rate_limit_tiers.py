"""Plan tiers through the served gateway: ``Plan.rate_limit_tier`` names the organization's
requests and tokens per minute (``LLM_RATE_LIMIT_TIERS``); beyond them 429
``rate_limit_exceeded`` with ``Retry-After``, before anything is held or sent upstream. An org
without a subscription has the default tier; a plan change applies to the next call."""

import time
from datetime import UTC, datetime

import openai
import pytest

from billing.errors import RateLimitExceeded
from billing.models import CreditUsageAttribution, Plan, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services.gateway_calls.quotas import take_quota
from billing.services.subscriptions import change_subscription_plan, create_subscription
from tests.billing.gateway.conftest import api_key, chat, openai_client
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("model_price")

TIERS = {
    "tiny": {"rpm": 2, "tpm": 1_000_000},
    "narrow": {"rpm": 100, "tpm": 2_500},
    "roomy": {"rpm": 100, "tpm": 1_000_000},
    "open": {"rpm": 0, "tpm": 0},
}


@pytest.fixture(autouse=True)
def tiers(settings):
    settings.LLM_RATE_LIMIT_TIERS = TIERS
    settings.LLM_DEFAULT_RATE_LIMIT_TIER = "tiny"


MINUTE_LEFT = 10  # seconds a test's calls need, a slow first call included


@pytest.fixture(autouse=True)
def one_minute():
    """The limits count per UTC minute: a test whose calls straddle a minute would count them
    in two buckets (CI saw it once, a first call taking 2.8 s). Start with time to spare."""
    left = 60 - datetime.now(UTC).second
    if left < MINUTE_LEFT:
        time.sleep(left + 0.1)


def subscribe(org, tier: str) -> None:
    Plan.objects.get_or_create(
        plan_code=f"tier-{tier}",
        defaults={"name": tier, "monthly_price": 1, "monthly_api_calls": 0, "rate_limit_tier": tier},
    )
    ops = UserFactory(is_staff=True)
    create_subscription(org_id=org.id, plan_code=f"tier-{tier}", owner=ops, actor=ops)


def calls(client, count: int, **kwargs) -> list[int | str]:
    """Each call's outcome: 200, or the error code of a refusal."""
    outcomes: list[int | str] = []
    for _ in range(count):
        try:
            chat(client, **kwargs)
            outcomes.append(200)
        except openai.APIStatusError as error:
            outcomes.append(error.response.json()["error"]["code"])
    return outcomes


def test_a_low_tier_org_is_limited_per_minute_with_retry_after(gateway, upstream, make_funded_member):
    org, user, _ = make_funded_member()
    subscribe(org, "tiny")
    client = openai_client(gateway, api_key(user))

    chat(client)
    chat(client)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client)

    error = caught.value.response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["details"] | {"retry_after_seconds": 0} == {
        "org_id": org.id,
        "plan": "tier-tiny",
        "tier": "tiny",
        "period": "minute",
        "limit_kind": "requests",
        "limit": 2,
        "retry_after_seconds": 0,
    }
    retry_after = int(caught.value.response.headers["Retry-After"])
    assert 1 <= retry_after <= 60 and error["details"]["retry_after_seconds"] == retry_after
    assert len(upstream.behaviour.requests) == 2  # refused before going upstream
    assert CreditUsageAttribution.objects.count() == 2
    assert UserCreditAllocation.objects.get(user=user).reserved_credits == 0
    assert find_all_drifts() == []


def test_the_limit_is_per_org_across_members_and_a_higher_tier_is_not_limited(
    gateway, upstream, make_funded_member
):
    low, ada, _ = make_funded_member()
    high, bob, _ = make_funded_member()
    _, cyd, _ = make_funded_member(org=low)
    subscribe(low, "tiny")
    subscribe(high, "roomy")

    low_outcomes = calls(openai_client(gateway, api_key(ada)), 2) + calls(
        openai_client(gateway, api_key(cyd)), 1
    )
    high_outcomes = calls(openai_client(gateway, api_key(bob)), 5)

    assert low_outcomes == [200, 200, "rate_limit_exceeded"]
    assert high_outcomes == [200] * 5


def test_tokens_per_minute_count_what_each_call_may_use(gateway, upstream, make_funded_member):
    # given: 2,500 tokens a minute; each call may use its prompt and max_tokens=1000 of output
    org, user, _ = make_funded_member()
    subscribe(org, "narrow")
    client = openai_client(gateway, api_key(user))

    outcomes = calls(client, 3, max_tokens=1000)
    small = calls(client, 1, max_tokens=10)

    assert outcomes == [200, 200, "rate_limit_exceeded"]
    assert small == [200]  # the refused call gave its tokens back; a small one still fits


def test_an_org_without_a_subscription_has_the_default_tier(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()

    assert calls(openai_client(gateway, api_key(user)), 3) == [200, 200, "rate_limit_exceeded"]


def test_individual_credits_have_no_org_limit(gateway, upstream, make_funded_member):
    from billing.services import add_individual_credits
    from tests.helpers import mc

    user = UserFactory()
    add_individual_credits(user=user, amount=mc(10), actor_label="test")

    assert calls(openai_client(gateway, api_key(user)), 3) == [200, 200, 200]


def test_a_plan_change_applies_to_the_next_call(gateway, upstream, make_funded_member, settings):
    # given: the plan is cached for an hour, and the tiny tier is used up
    settings.LLM_QUOTA_PLAN_CACHE_SECONDS = 3600
    org, user, _ = make_funded_member()
    subscribe(org, "tiny")
    Plan.objects.create(
        plan_code="tier-open", name="open", monthly_price=2, monthly_api_calls=0, rate_limit_tier="open"
    )
    client = openai_client(gateway, api_key(user))
    assert calls(client, 3) == [200, 200, "rate_limit_exceeded"]

    change_subscription_plan(org_id=org.id, plan_code="tier-open", actor_label="test")

    assert calls(client, 3) == [200, 200, 200]


def test_a_plan_naming_an_unknown_tier_gets_the_default_tier(transactional_db, make_funded_member):
    org, _, _ = make_funded_member()
    subscribe(org, "gold-plated")  # not in the table
    minute = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)

    take_quota(org_id=org.id, now=minute)
    take_quota(org_id=org.id, now=minute)
    with pytest.raises(RateLimitExceeded) as refused:
        take_quota(org_id=org.id, now=minute)

    assert refused.value.details["tier"] == "tiny"
    assert refused.value.retry_after == 55
    assert take_quota(org_id=org.id, now=minute.replace(minute=1)) is not None  # a new minute
