"""Concurrent calls against one allocation, client disconnects, broken streams, and BYOK."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from billing.gateway.streaming import MID_STREAM_FAILURE
from billing.models import CreditReservation, CreditUsageAttribution, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from tests.billing.gateway.conftest import MODEL, allow_byok, api_key, chat, openai_client
from tests.billing.gateway.test_chat import estimated_prompt, expected_cost

pytestmark = pytest.mark.usefixtures("model_price")


def drain(stream, *, into: list) -> None:
    for chunk in stream:
        into.append(chunk)


def wait_until_settled(count: int = 1, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while CreditReservation.objects.filter(status=CreditReservation.Status.HELD).exists() or (
        CreditReservation.objects.count() < count
    ):
        assert time.monotonic() < deadline, "the call was not settled"
        time.sleep(0.05)


def test_50_concurrent_calls_beyond_the_allocation_never_overspend(gateway, upstream, make_funded_member):
    # given: 1 credit; each call holds ~0.061 (max_tokens=100) and costs 0.013
    org, user, allocation = make_funded_member(pool=100, allocation=1)
    upstream.behaviour.latency = 0.3
    client = openai_client(gateway, api_key(user))
    lowest_free: list[int] = []
    running = threading.Event()
    running.set()

    def watch() -> None:
        from django.db import connection

        while running.is_set():
            lowest_free.append(UserCreditAllocation.objects.get(pk=allocation.pk).free_credits)
            time.sleep(0.01)
        connection.close()

    def call(i: int):
        try:
            return chat(client, f"request number {i}", max_tokens=100)[1]
        except openai.APIStatusError as refused:
            return refused

    # when
    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(call, range(50)))
    running.clear()
    watcher.join()

    # then
    charged = [o for o in outcomes if not isinstance(o, openai.APIStatusError)]
    refused = [o for o in outcomes if isinstance(o, openai.APIStatusError)]
    assert {r.status_code for r in refused} <= {402}
    assert {r.response.json()["error"]["code"] for r in refused} <= {"insufficient_credits"}
    assert refused, "the worst cases together exceed the allocation: some calls must be refused"
    assert len(charged) >= 16  # 1000 // 61 fit at once, more as earlier calls settle
    assert min(lowest_free) >= 0
    allocation.refresh_from_db()
    rows = list(CreditUsageAttribution.objects.all())
    assert len(rows) == len(charged)
    assert allocation.used_credits == sum(r.credits_used for r in rows)
    assert allocation.used_credits == sum(round(float(o.headers["X-Cost-Incurred"]) * 1000) for o in charged)
    assert allocation.reserved_credits == 0
    assert 0 <= allocation.used_credits <= allocation.allocated_credits
    assert len(upstream.behaviour.requests) == len(charged)  # refused calls never went upstream
    assert find_all_drifts() == []


def test_client_disconnect_mid_stream_without_drain_charges_what_was_generated(
    gateway, upstream, make_funded_member, settings
):
    settings.LLM_DISCONNECT_DRAIN_SECONDS = 0  # stop reading the upstream at once
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.completion_tokens = 60
    upstream.behaviour.token_delay = 0.05
    client = openai_client(gateway, api_key(user))

    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": "a long answer please"}], stream=True
    ) as response:
        received = []
        for chunk in response.parse():
            received.append(chunk)
            if len(received) == 5:
                break
    # leaving the block closed the connection mid-stream
    wait_until_settled()

    row = CreditUsageAttribution.objects.get()
    assert 5 <= row.output_tokens < 60
    assert row.input_tokens == estimated_prompt("a long answer please")  # no usage chunk came
    assert row.credits_used == expected_cost(row.input_tokens, row.output_tokens) > 0
    assert row.request_metadata["usage_source"] == "estimated"
    assert row.request_metadata["client_disconnected"] is True
    assert row.request_metadata["disconnect_drain"] == "cut"
    assert CreditReservation.objects.get().status == CreditReservation.Status.SETTLED
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (row.credits_used, 0)
    assert find_all_drifts() == []


def test_upstream_dropping_mid_stream_charges_the_streamed_text_and_tells_the_client(
    gateway, upstream, make_funded_member
):
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.mode = "drop"  # closes the connection after 11 of 20 chunks
    client = openai_client(gateway, api_key(user))
    received = []

    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], stream=True
    )

    with pytest.raises(openai.APIError) as caught:
        drain(stream, into=received)

    assert str(caught.value) == MID_STREAM_FAILURE
    assert len(received) == 11
    wait_until_settled()
    row = CreditUsageAttribution.objects.get()
    assert row.output_tokens == 11
    assert row.credits_used == expected_cost(estimated_prompt("hello"), 11)
    assert row.request_metadata["upstream_failure"] == "upstream_error"
    allocation.refresh_from_db()
    assert allocation.reserved_credits == 0
    assert find_all_drifts() == []


@pytest.mark.parametrize("stream", [False, True])
def test_byok_call_is_forwarded_with_the_callers_key_charged_zero_and_attributed(
    gateway, upstream, make_funded_member, stream, settings
):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    allow_byok(settings, org)
    client = openai_client(gateway, api_key(user), **{"X-Provider-Key": "sk-callers-own"})

    if stream:
        list(client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "four words of prompt"}], stream=True
        ))  # fmt: skip
    else:
        _, raw = chat(client, "four words of prompt")
        assert raw.headers["X-Cost-Incurred"] == "0.000"

    assert upstream.behaviour.authorizations == ["Bearer sk-callers-own"]
    row = CreditUsageAttribution.objects.get()
    assert (row.service_type, row.credits_used) == ("byok", 0)
    assert (row.user_id, row.org_id, row.service_name) == (user.pk, org.id, MODEL)
    assert (row.input_tokens, row.output_tokens) == (4, 20)
    assert row.request_metadata["byok"] is True
    assert row.request_metadata["list_price_credits"] == expected_cost(4, 20)
    assert "sk-callers-own" not in str(row.request_metadata)
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (0, 0)
    assert find_all_drifts() == []


def test_byok_works_with_no_credits_left_but_not_without_an_allocation(
    gateway, upstream, make_funded_member, settings
):
    from billing.services import deduct_credits
    from organizations.services import add_member
    from tests.factories import UserFactory

    org, user, allocation = make_funded_member(pool=100, allocation=10)
    allow_byok(settings, org)
    deduct_credits(user=user, org_id=org.id, amount=allocation.allocated_credits, request_id="spent-all")
    client = openai_client(gateway, api_key(user), **{"X-Provider-Key": "sk-callers-own"})

    _, raw = chat(client, "four words of prompt")

    assert raw.headers["X-Cost-Incurred"] == "0.000"
    assert CreditUsageAttribution.objects.filter(service_type="byok", credits_used=0).count() == 1
    stranger = UserFactory()
    add_member(org_id=org.id, user=stranger, actor_label="test")  # a member, but no allocation
    refused = openai_client(gateway, api_key(stranger), **{"X-Provider-Key": "sk-callers-own"})
    with pytest.raises(openai.APIStatusError) as refusal:
        chat(refused, "four words of prompt")
    assert refusal.value.status_code == 402
    assert refusal.value.body["code"] == "no_allocation"  # openai puts the "error" object here
    assert upstream.behaviour.authorizations == ["Bearer sk-callers-own"]  # only the allowed call
    assert find_all_drifts() == []
