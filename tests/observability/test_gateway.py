"""The LLM gateway (served by uvicorn): one request id per call across the response header,
the log lines and the ledger rows; its added latency, upstream errors and refusals counted."""

import uuid

import openai
import pytest

from billing.models import CreditReservation, CreditUsageAttribution, Plan
from billing.services.subscriptions import create_subscription
from organizations.services import add_member
from tests.billing.gateway.conftest import MODEL, api_key, chat, openai_client
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("model_price")
ADDED = "orgbilling_gateway_added_latency_seconds_count"
REFUSALS = "orgbilling_charge_refusals_total"
ERRORS = "orgbilling_gateway_upstream_errors_total"


def delta(before, after, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_the_callers_request_id_is_the_calls_one_id(gateway, make_funded_member, scrape, json_logs):
    _, user, _ = make_funded_member()
    client = openai_client(gateway, api_key(user), **{"X-Request-Id": "gw-call-0001"})
    before = scrape()

    _, raw = chat(client)

    after = scrape()
    assert raw.headers["X-Request-Id"] == "gw-call-0001"
    assert CreditUsageAttribution.objects.get().request_id == "gw-call-0001"
    assert CreditReservation.objects.get().request_id == "gw-call-0001"
    [finished] = [
        line for line in json_logs.events("request finished") if line["request_id"] == "gw-call-0001"
    ]
    assert (finished["route"], finished["status"]) == ("api/v1/llm/chat/completions", 200)
    assert delta(before, after, ADDED, endpoint="chat_completions") == 1
    assert delta(before, after, "orgbilling_charges_total", operation="settlement") == 1
    route = {"route": "api/v1/llm/chat/completions", "method": "POST", "status_class": "2xx"}
    assert delta(before, after, "orgbilling_http_request_duration_seconds_count", **route) == 1


def test_without_a_request_id_the_gateway_makes_one_and_charges_under_it(gateway, make_funded_member):
    _, user, _ = make_funded_member()

    _, raw = chat(openai_client(gateway, api_key(user), **{"X-Request-Id": "not valid!"}))

    request_id = raw.headers["X-Request-Id"]
    assert uuid.UUID(request_id).version == 4
    assert CreditUsageAttribution.objects.get().request_id == request_id


def test_a_streamed_call_carries_the_id_and_is_timed(gateway, make_funded_member, scrape):
    _, user, _ = make_funded_member()
    client = openai_client(gateway, api_key(user), **{"X-Request-Id": "gw-stream-1"})
    before = scrape()

    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": "stream please"}], stream=True
    ) as response:
        assert response.headers["X-Request-Id"] == "gw-stream-1"
        for _ in response.iter_lines():
            pass

    assert delta(before, scrape(), ADDED, endpoint="chat_completions") == 1


def test_a_refused_call_is_counted_logged_and_carries_the_id(gateway, make_funded_member, scrape, json_logs):
    org, _, _ = make_funded_member()
    stranger = UserFactory()
    add_member(org_id=org.id, user=stranger, actor_label="test")  # a member with no allocation
    before = scrape()

    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client(gateway, api_key(stranger), **{"X-Request-Id": "gw-refused-1"}))

    assert caught.value.status_code == 402
    assert caught.value.response.headers["X-Request-Id"] == "gw-refused-1"
    assert delta(before, scrape(), REFUSALS, operation="hold", code="no_active_allocation") == 1
    [line] = json_logs.events("credit deduction failed")
    assert line["request_id"] == "gw-refused-1"
    assert (line["org_id"], line["user_id"], line["code"]) == (
        org.id,
        stranger.username,
        "no_active_allocation",
    )
    assert float(line["amount_credits"]) > 0  # the worst case that was to be held


def test_a_call_over_the_plan_quota_is_counted_as_a_refusal(gateway, make_funded_member, scrape, json_logs):
    org, user, _ = make_funded_member()
    Plan.objects.create(plan_code="quota-10", name="Quota", monthly_price=1, monthly_api_calls=10)  # 1 a day
    ops = UserFactory(is_staff=True)
    create_subscription(org_id=org.id, plan_code="quota-10", owner=ops, actor=ops)
    client = openai_client(gateway, api_key(user), **{"X-Request-Id": "gw-quota-1"})
    chat(client)
    before = scrape()

    with pytest.raises(openai.RateLimitError):
        chat(client)

    assert delta(before, scrape(), REFUSALS, operation="quota", code="quota_exceeded") == 1
    [line] = json_logs.events("credit deduction failed")
    assert (line["code"], line["org_id"], line["user_id"]) == ("quota_exceeded", org.id, user.username)


def test_upstream_errors_are_counted_by_kind(gateway, upstream, settings, make_funded_member, scrape):
    _, user, _ = make_funded_member()
    client = openai_client(gateway, api_key(user))
    before = scrape()

    upstream.behaviour.mode = "error"
    with pytest.raises(openai.APIStatusError):
        chat(client)
    settings.LLM_UPSTREAM_BASE_URL = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    with pytest.raises(openai.APIStatusError):
        chat(client)

    after = scrape()
    assert delta(before, after, ERRORS, kind="status_5xx") == 1
    assert delta(before, after, ERRORS, kind="connection") == 1
    assert delta(before, after, ADDED, endpoint="chat_completions") == 2
