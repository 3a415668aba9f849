"""Open records of calls in flight (billing/services/gateway_calls/open_calls.py): a call has
one from its hold to its settlement or release, a stream's shows its progress, and the task charges only those
whose call can no longer be running, once (issue 11 §2, "Failed settlement")."""

import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from billing import tasks
from billing.models import CreditReservation, CreditUsageAttribution
from tests.billing.gateway.conftest import MODEL, api_key, chat, openai_client
from tests.billing.gateway.open_records import records
from tests.billing.gateway.test_chat import estimated_prompt

pytestmark = pytest.mark.usefixtures("model_price")


@pytest.fixture
def spool(settings, tmp_path: Path) -> Path:
    settings.LLM_SETTLEMENT_SPOOL_DIR = str(tmp_path / "spool")
    settings.LLM_SPOOL_PROGRESS_SECONDS = 0.1
    return tmp_path / "spool"


def wait_for(condition: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def during_and_after(call: Any, spool: Path) -> list[dict[str, Any]]:
    """Run ``call`` (its upstream answers after 1 s); the open records seen while it ran."""
    caller = threading.Thread(target=call)
    caller.start()
    try:
        wait_for(lambda: bool(records(spool)), "the call in flight has no open record")
        return [json.loads(path.read_bytes()) for path in records(spool)]
    finally:
        caller.join(timeout=30)


def test_a_call_has_an_open_record_while_in_flight_and_none_once_charged(
    gateway, upstream, spool, make_funded_member
):
    # given: an upstream that takes 1 s to answer
    _, user, _ = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.latency = 1.0
    client = openai_client(gateway, api_key(user))

    # when: a JSON chat call, then an image call
    seen_chat = during_and_after(lambda: chat(client, "hello there"), spool)
    seen_image = during_and_after(lambda: client.images.generate(model=MODEL, prompt="a cat", n=2), spool)

    # then: each had its record while in flight, with what a later settlement needs ...
    reservations = dict(CreditReservation.objects.values_list("request_id", "pk"))
    (chat_record,), (image_record,) = seen_chat, seen_image
    assert chat_record["call"]["reservation_id"] == reservations[chat_record["call"]["request_id"]]
    assert Decimal(chat_record["call"]["price"]["output_credits_per_million"]) == Decimal("600")
    assert (chat_record["estimated_input_tokens"], chat_record["output_bound"]) == (
        estimated_prompt("hello there"),
        1000,
    )
    assert (chat_record["reasoning"], chat_record["images"], image_record["images"]) == (False, None, 2)
    # ... and, once charged, none is left
    wait_for(lambda: CreditUsageAttribution.objects.count() == 2, "the two calls were not charged")
    assert records(spool) == []
    assert not CreditReservation.objects.filter(status=CreditReservation.Status.HELD).exists()


def test_calls_the_upstream_refused_leave_no_open_record_behind(gateway, upstream, spool, make_funded_member):
    # given: an upstream that fails every call, after 1 s
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.mode = "error"
    upstream.behaviour.latency = 1.0
    client = openai_client(gateway, api_key(user))

    def refused(**kwargs: Any) -> None:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], **kwargs
            )

    # when: a JSON call and a stream are refused upstream (each had its record meanwhile)
    assert len(during_and_after(refused, spool)) == 1
    assert len(during_and_after(lambda: refused(stream=True), spool)) == 1

    # then: both released, nothing charged, nothing left on disk
    assert set(CreditReservation.objects.values_list("status", flat=True)) == {"released"}
    assert records(spool) == []
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (0, 0)


def test_a_running_streams_record_shows_its_progress_and_the_task_leaves_it_alone(
    gateway, upstream, spool, make_funded_member
):
    # given: a stream of 40 tokens over 4 s
    _, user, allocation = make_funded_member(pool=100, allocation=10)
    upstream.behaviour.completion_tokens = 40
    upstream.behaviour.token_delay = 0.1
    client = openai_client(gateway, api_key(user))
    chunks: list[Any] = []
    reader = threading.Thread(
        target=lambda: chunks.extend(
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    )
    reader.start()
    try:
        # when: it has streamed some of its output, the task runs
        wait_for(
            lambda: bool(records(spool)) and json.loads(records(spool)[0].read_bytes())["output_tokens"] >= 5,
            "no open record with the stream's progress",
        )
        outcome = tasks.settle_spooled_calls()

        # then: the young record is left alone, the hold too
        assert outcome == {"settled": 0, "failed": []}
        assert len(records(spool)) == 1
        assert CreditReservation.objects.get().status == CreditReservation.Status.HELD
    finally:
        reader.join(timeout=30)
    # ... and the stream, once done, is charged its upstream usage, once, its record gone
    wait_for(lambda: CreditReservation.objects.get().status == "settled", "the stream was not settled")
    row = CreditUsageAttribution.objects.get()
    assert (row.output_tokens, row.request_metadata["usage_source"]) == (40, "upstream")
    assert records(spool) == []
    assert tasks.settle_spooled_calls() == {"settled": 0, "failed": []}
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (row.credits_used, 0)


def test_a_disk_that_refuses_the_open_record_does_not_refuse_the_call(
    gateway, upstream, settings, tmp_path: Path, make_funded_member
):
    # given: a spool directory that cannot be created (a file is in its way)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.LLM_SETTLEMENT_SPOOL_DIR = str(blocker / "spool")
    _, user, allocation = make_funded_member(pool=100, allocation=10)

    # when
    completion, raw = chat(openai_client(gateway, api_key(user)))

    # then: answered and charged as usual
    assert raw.http_response.status_code == 200 and completion.choices
    row = CreditUsageAttribution.objects.get()
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (row.credits_used, 0)
