"""Rate limits: 429 with Retry-After, and X-RateLimit-* headers on every throttled response."""

import pytest

from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

BASE = "/api/v1/org-billing"


def test_reads_carry_rate_limit_headers_and_429_after_the_limit(api_client, settings, make_funded_member):
    settings.API_RATE_LIMITS = {**settings.API_RATE_LIMITS, "read": "3/minute"}
    org, user, _ = make_funded_member()
    api_client.force_login(user)
    remaining = []
    for _ in range(3):
        response = api_client.get(f"{BASE}/credits/{org.id}")
        assert response.status_code == 200
        assert response["X-RateLimit-Limit"] == "3"
        remaining.append(int(response["X-RateLimit-Remaining"]))
        assert int(response["X-RateLimit-Reset"]) > 0
    assert remaining == [2, 1, 0]
    refused = api_client.get(f"{BASE}/credits/{org.id}")
    error = assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert error["details"]["retry_after_seconds"] == int(refused["Retry-After"])
    assert refused["X-RateLimit-Remaining"] == "0"


def test_limits_are_per_user(api_client, settings, make_funded_member):
    settings.API_RATE_LIMITS = {**settings.API_RATE_LIMITS, "read": "1/minute"}
    org, first, _ = make_funded_member()
    _, second, _ = make_funded_member(pool=0, allocation=1, org=org)
    api_client.force_login(first)
    assert api_client.get(f"{BASE}/credits/{org.id}").status_code == 200
    assert api_client.get(f"{BASE}/credits/{org.id}").status_code == 429
    api_client.force_login(second)
    assert api_client.get(f"{BASE}/credits/{org.id}").status_code == 200


def test_writes_have_their_own_budget(api_client, settings, staff_user, make_funded_member):
    settings.API_RATE_LIMITS = {**settings.API_RATE_LIMITS, "write": "2/minute"}
    org, _, _ = make_funded_member()
    api_client.force_login(staff_user)
    for _ in range(2):
        assert (
            api_client.post(f"{BASE}/credits/{org.id}/add", {"credits": 1}, format="json").status_code < 300
        )
    assert_error(
        api_client.post(f"{BASE}/credits/{org.id}/add", {"credits": 1}, format="json"), 429, "rate_limited"
    )
    assert api_client.get(f"{BASE}/credits/{org.id}").status_code == 200


def test_subscription_changes_are_limited_per_hour(api_client, settings, staff_user):
    settings.API_RATE_LIMITS = {**settings.API_RATE_LIMITS, "subscription": "2/hour"}
    api_client.force_login(staff_user)
    for n in range(2):
        response = api_client.post(
            f"{BASE}/subscriptions", {"org_id": f"limited-{n}", "plan_code": "starter"}, format="json"
        )
        assert response.status_code == 201, response.content
    refused = api_client.post(
        f"{BASE}/subscriptions", {"org_id": "limited-3", "plan_code": "starter"}, format="json"
    )
    assert_error(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) > 60
    assert refused["X-RateLimit-Limit"] == "2"
