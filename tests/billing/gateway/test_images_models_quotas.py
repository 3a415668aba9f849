"""Image generation priced per image by size/quality, the model list with prices, plan quotas."""

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import CreditUsageAttribution, Plan, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services.gateway_calls.quotas import take_quota
from billing.services.subscriptions import create_subscription
from tests.billing.gateway.conftest import MODEL, api_key, chat, openai_client
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("model_price")


@pytest.mark.parametrize(
    ("size", "quality", "per_image"),
    [("1024x1024", "hd", 8000), ("1024x1024", None, 4000), (None, None, 4000)],
)
def test_images_are_charged_count_times_the_price_for_size_and_quality(
    gateway, upstream, make_funded_member, size, quality, per_image
):
    org, user, allocation = make_funded_member(pool=100, allocation=50)
    client = openai_client(gateway, api_key(user))
    options = {k: v for k, v in {"size": size, "quality": quality}.items() if v}

    raw = client.images.with_raw_response.generate(model=MODEL, prompt="a red fox", n=3, **options)

    assert len(raw.parse().data) == 3
    row = CreditUsageAttribution.objects.get()
    assert row.credits_used == 3 * per_image
    assert (row.service_type, row.service_name, row.org_id) == ("image", MODEL, org.id)
    assert row.request_metadata["images"] == 3
    assert Decimal(row.request_metadata["price"]["image_credits"]) == Decimal(per_image) / 1000
    assert raw.headers["X-Cost-Incurred"] == f"{3 * per_image / 1000:.3f}"
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (3 * per_image, 0)
    assert find_all_drifts() == []


def test_images_beyond_the_allocation_are_402_before_going_upstream(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member(pool=100, allocation=10)

    with pytest.raises(openai.APIStatusError) as caught:
        openai_client(gateway, api_key(user)).images.generate(model=MODEL, prompt="x", n=3)

    assert caught.value.status_code == 402
    assert upstream.behaviour.requests == []


def test_models_lists_active_models_with_prices(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()

    response = httpx.get(f"{gateway.llm_url}/models", headers={"Authorization": f"Bearer {api_key(user)}"})
    listed = openai_client(gateway, api_key(user)).models.list()

    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [
            {
                "id": MODEL,
                "object": "model",
                "created": response.json()["data"][0]["created"],
                "owned_by": "orgbilling",
                "input_credits_per_million": 150.0,
                "output_credits_per_million": 600.0,
                "image_credits": 4.0,
                "image_prices": {"1024x1024/hd": 8.0, "1024x1024/standard": 4.0},
                "max_output_tokens": 1000,
                "cache_read_credits_per_million": None,
                "cache_write_credits_per_million": None,
                "audio_input_credits_per_million": None,
                "reasoning_credits_per_million": None,
                "audio_output_credits_per_million": None,
            }
        ],
    }
    assert [m.id for m in listed.data] == [MODEL]


def test_models_needs_credentials(gateway, upstream):
    response = httpx.get(f"{gateway.llm_url}/models")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_wrong_method_is_405(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()

    response = httpx.get(
        f"{gateway.llm_url}/chat/completions", headers={"Authorization": f"Bearer {api_key(user)}"}
    )

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def subscribe(org, *, monthly_calls: int) -> None:
    Plan.objects.create(
        plan_code=f"quota-{monthly_calls}", name="Quota", monthly_price=1, monthly_api_calls=monthly_calls
    )
    ops = UserFactory(username="ops", is_staff=True)
    create_subscription(org_id=org.id, plan_code=f"quota-{monthly_calls}", owner=ops, actor=ops)


def test_plan_quota_exhaustion_is_429_with_retry_after(gateway, upstream, make_funded_member):
    # given: 20 calls a month, so 2 a day (10%)
    org, user, _ = make_funded_member()
    subscribe(org, monthly_calls=20)
    client = openai_client(gateway, api_key(user))

    chat(client)
    chat(client)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client)

    error = caught.value.response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"]["period"] == "day"
    assert error["details"]["limit"] == 2
    retry_after = int(caught.value.response.headers["Retry-After"])
    assert 0 < retry_after <= 86400
    assert error["details"]["retry_after_seconds"] == retry_after
    assert CreditUsageAttribution.objects.count() == 2
    assert len(upstream.behaviour.requests) == 2
    assert UserCreditAllocation.objects.get(user=user).reserved_credits == 0


def test_failed_and_refused_calls_give_their_quota_back(gateway, upstream, make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation="0.1")
    subscribe(org, monthly_calls=10)  # one call a day
    client = openai_client(gateway, api_key(user))

    upstream.behaviour.mode = "error"
    with pytest.raises(openai.APIStatusError):
        chat(client, max_tokens=10)
    with pytest.raises(openai.APIStatusError) as poor:
        chat(client, max_tokens=1000)  # more than the allocation holds
    upstream.behaviour.mode = "ok"
    chat(client, max_tokens=10)

    assert poor.value.status_code == 402
    assert CreditUsageAttribution.objects.count() == 1


def test_monthly_quota_and_its_retry_after(transactional_db, make_funded_member):
    org, _, _ = make_funded_member()
    subscribe(org, monthly_calls=3)  # daily 1 (ceil of 10%)
    days = [datetime(2026, 2, day, 12, tzinfo=UTC) for day in (1, 2, 3, 4)]

    for day in days[:3]:
        take_quota(org_id=org.id, now=day)
    from billing.errors import QuotaExceeded

    with pytest.raises(QuotaExceeded) as caught:
        take_quota(org_id=org.id, now=days[3])

    assert caught.value.details["period"] == "month"
    assert caught.value.retry_after == (datetime(2026, 3, 1, tzinfo=UTC) - days[3]).total_seconds()


def test_unlimited_plan_and_individual_credits_have_no_quota(transactional_db, make_funded_member):
    org, _, _ = make_funded_member()
    subscribe(org, monthly_calls=0)
    Plan.objects.filter(plan_code="quota-0").update(rate_limit_tier="premium")  # no tier limit either

    assert take_quota(org_id=org.id) is None
    assert take_quota(org_id=None) is None
