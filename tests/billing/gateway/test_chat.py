"""Chat completions through the gateway with the official openai client: priced from the
upstream's usage, charged exactly tokens × price, attributed, answered with cost headers."""

import json
import math
import threading
import time
from decimal import ROUND_CEILING, Decimal

import httpx
import openai
import pytest

from billing.gateway.responses import credits_text
from billing.models import CreditReservation, CreditUsageAttribution, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from tests.billing.gateway.conftest import MODEL, UPSTREAM_KEY, api_key, chat, openai_client

pytestmark = pytest.mark.usefixtures("model_price")


def estimated_prompt(text: str) -> int:
    """The gateway's hold estimate for one user message: ceil(characters of content and role
    / 4) + 4 per message + 3 for the reply."""
    return math.ceil((len(text) + len("user")) / 4) + 4 + 3


def expected_cost(input_tokens: int, output_tokens: int) -> int:
    """Tokens × price, in millicredits rounded up, computed here independently of billing.pricing."""
    credits = (Decimal(input_tokens) * 150 + Decimal(output_tokens) * 600) / Decimal(1_000_000)
    return int((credits * 1000).to_integral_value(rounding=ROUND_CEILING))


def test_completion_is_charged_tokens_times_price_and_attributed(gateway, upstream, make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    client = openai_client(gateway, api_key(user))

    completion, raw = chat(client, "four words of prompt", max_tokens=50)

    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 20)
    row = CreditUsageAttribution.objects.get()
    assert row.credits_used == expected_cost(4, 20) == 13  # 0.0006 + 0.012 credits, rounded up
    assert (row.service_type, row.service_name) == ("llm", MODEL)
    assert (row.input_tokens, row.output_tokens) == (4, 20)
    assert (row.user_id, row.org_id, row.allocation_id) == (user.pk, org.id, allocation.pk)
    assert row.request_id == raw.headers["X-Request-Id"]
    assert row.request_metadata["price"] == {
        "model": MODEL,
        "input_credits_per_million": "150.000",
        "output_credits_per_million": "600.000",
        "image_credits": "4.000",
    }
    assert row.request_metadata["usage_source"] == "upstream"
    allocation.refresh_from_db()
    assert allocation.used_credits == 13
    assert allocation.reserved_credits == 0
    assert raw.headers["X-Cost-Incurred"] == "0.013"
    assert raw.headers["X-Credits-Remaining"] == credits_text(allocation.free_credits) == "9.987"
    assert raw.headers["X-Org-Id"] == org.id
    assert CreditReservation.objects.get().status == CreditReservation.Status.SETTLED
    assert find_all_drifts() == []


def test_upstream_gets_our_key_and_the_priced_output_cap_not_the_callers_credentials(
    gateway, upstream, make_funded_member
):
    _, user, _ = make_funded_member()
    key = api_key(user)

    chat(openai_client(gateway, key))

    assert upstream.behaviour.authorizations == [f"Bearer {UPSTREAM_KEY}"]
    sent = upstream.behaviour.requests[0]
    assert sent["max_tokens"] == 1000  # the model's max_output_tokens, as priced in the hold
    assert key not in json.dumps(sent)


def test_worst_case_is_held_while_the_call_runs(gateway, upstream, make_funded_member):
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.latency = 1.0
    client = openai_client(gateway, api_key(user))
    worker = threading.Thread(target=chat, args=(client, "two words"), kwargs={"max_tokens": 500})

    worker.start()
    hold = None
    for _ in range(100):
        hold = CreditReservation.objects.filter(status=CreditReservation.Status.HELD).first()
        if hold is not None:
            break
        time.sleep(0.02)
    worker.join()

    assert hold is not None
    assert hold.amount == expected_cost(estimated_prompt("two words"), 500)
    allocation.refresh_from_db()
    assert allocation.reserved_credits == 0
    assert allocation.used_credits == expected_cost(2, 20)


def test_streamed_completion_is_charged_tokens_times_price(gateway, upstream, make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.completion_tokens = 30
    client = openai_client(gateway, api_key(user))

    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": "stream me some tokens"}], stream=True
    ) as response:
        chunks = list(response.parse())
        headers = response.headers

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok " * 30
    assert all(c.choices for c in chunks)  # the usage chunk the caller did not ask for is not relayed
    row = CreditUsageAttribution.objects.get()
    assert (row.input_tokens, row.output_tokens) == (4, 30)
    assert row.credits_used == expected_cost(4, 30)
    assert row.request_id == headers["X-Request-Id"]
    assert headers["X-Org-Id"] == org.id
    assert row.request_metadata["stream"] is True
    assert row.request_metadata["usage_source"] == "upstream"
    assert upstream.behaviour.requests[0]["stream_options"] == {"include_usage": True}
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (expected_cost(4, 30), 0)
    assert find_all_drifts() == []


def test_streamed_usage_chunk_is_relayed_when_the_caller_asked_for_it(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    client = openai_client(gateway, api_key(user))

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "count my usage"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 20)
    assert CreditUsageAttribution.objects.get().credits_used == expected_cost(3, 20)


def test_stream_ends_with_the_cost_then_done(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member(pool=100, allocation=10)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}

    with httpx.stream(
        "POST",
        f"{gateway.llm_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key(user)}"},
        timeout=30,
    ) as response:
        raw = b"".join(response.iter_bytes()).decode()

    events = [e for e in raw.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    row = CreditUsageAttribution.objects.get()
    assert events[-2] == (
        f": orgbilling request_id={row.request_id} cost_incurred={credits_text(row.credits_used)} "
        f"credits_remaining={credits_text(row.balance_after)}"
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["X-Credits-Reserved"] == credits_text(expected_cost(estimated_prompt("hi"), 1000))


def test_slow_upstream_does_not_block_other_requests(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.latency = 1.0
    client = openai_client(gateway, api_key(user))
    results: list[float] = []

    def timed_call() -> None:
        started = time.monotonic()
        chat(client)
        results.append(time.monotonic() - started)

    workers = [threading.Thread(target=timed_call) for _ in range(8)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    time.sleep(0.2)
    listing_started = time.monotonic()
    models = client.models.list()
    listing_time = time.monotonic() - listing_started
    for worker in workers:
        worker.join()
    total = time.monotonic() - started

    assert [m.id for m in models.data] == [MODEL]
    assert listing_time < 0.5  # served while eight calls wait on the upstream
    assert len(results) == 8
    assert total < 2.5  # the eight 1-second calls overlapped
    assert UserCreditAllocation.objects.get(user=user).reserved_credits == 0


def test_price_change_during_a_call_applies_to_new_calls_only(
    gateway, upstream, make_funded_member, model_price
):
    _, user, _ = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.latency = 1.0
    client = openai_client(gateway, api_key(user))
    worker = threading.Thread(target=chat, args=(client, "four words of prompt"))

    worker.start()
    deadline = time.monotonic() + 5
    while not CreditReservation.objects.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    model_price.output_credits_per_million = Decimal("6000")
    model_price.save()
    worker.join()
    upstream.behaviour.latency = 0
    chat(client, "four words of prompt")

    first, second = CreditUsageAttribution.objects.order_by("id")
    assert first.credits_used == expected_cost(4, 20)
    assert first.request_metadata["price"]["output_credits_per_million"] == "600.000"
    assert second.request_metadata["price"]["output_credits_per_million"] == "6000.000"
    assert second.credits_used > first.credits_used


def test_client_giving_up_before_the_answer_is_still_charged_the_real_usage(
    gateway, upstream, make_funded_member
):
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.latency = 1.0
    impatient = openai_client(gateway, api_key(user)).with_options(timeout=0.3)

    with pytest.raises(openai.APITimeoutError):
        chat(impatient, "four words of prompt")
    deadline = time.monotonic() + 5
    while not CreditUsageAttribution.objects.exists():
        assert time.monotonic() < deadline, "the abandoned call was never settled"
        time.sleep(0.05)

    row = CreditUsageAttribution.objects.get()
    assert (row.input_tokens, row.output_tokens) == (4, 20)
    assert row.request_metadata["usage_source"] == "upstream"
    assert row.credits_used == expected_cost(4, 20)
    allocation.refresh_from_db()
    assert allocation.reserved_credits == 0
    assert find_all_drifts() == []
