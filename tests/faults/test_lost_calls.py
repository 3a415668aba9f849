"""A web process killed mid-call (SIGKILL, the OOM killer) does not make the call free: its open
record (billing/services/gateway_calls/open_calls.py) is charged by the task once its call could
no longer be running, exactly once, with what it streamed so far (issue 11 §2, "Failed settlement")."""

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from billing import tasks
from billing.models import CreditReservation, CreditUsageAttribution, UserCreditAllocation
from tests.billing.gateway.open_records import age, records
from tests.billing.gateway.test_chat import estimated_prompt
from tests.fake_upstream import FakeUpstream, running_upstream
from tests.faults.conftest import wait_until
from tests.faults.test_database_outage import CHAT, PROMPT, cost_of
from tests.load.test_served_under_load import MODEL, app_environment, assert_ledger_clean, build_teams
from tests.served import served_app

# What the gateway estimates for PROMPT before the call (the fake upstream would count 2 words).
ESTIMATED_PROMPT_TOKENS = estimated_prompt(PROMPT[0]["content"])


@pytest.fixture
def upstream() -> Any:
    with running_upstream() as up:
        yield up


def open_record(spool: Path) -> dict[str, Any]:
    (path,) = spool.glob("*.open")
    return dict(json.loads(path.read_bytes()))


def age_open_records(spool: Path, seconds: float) -> None:
    """As if the calls had started ``seconds`` earlier (no test waits out a call's time limit)."""
    for path in records(spool):
        age(path, seconds)


def test_a_stream_whose_process_was_killed_is_charged_once_with_what_it_streamed(
    transactional_db, upstream: FakeUpstream, tmp_path: Path, settings
):
    # given: a stream of 200 tokens over 10 s, its progress recorded every 0.2 s
    team = build_teams(1, 1)[0]
    user, key = team.members[0]
    upstream.behaviour.completion_tokens = 200
    upstream.behaviour.token_delay = 0.05
    spool = tmp_path / "spool"
    settings.LLM_SETTLEMENT_SPOOL_DIR = str(spool)
    environment = app_environment(
        upstream, LLM_SETTLEMENT_SPOOL_DIR=str(spool), LLM_SPOOL_PROGRESS_SECONDS="0.2"
    )
    with served_app(tmp_path, **environment) as app:
        # when: the client has read 40 chunks, the web process is killed
        chunks = 0
        with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{app.url}{CHAT}", headers={"Authorization": f"Bearer {key}"},
            json={"model": MODEL, "messages": PROMPT, "max_tokens": 200, "stream": True},
        ) as response:  # fmt: skip
            assert response.status_code == 200
            request_id = response.headers["X-Request-Id"]
            for line in response.iter_lines():
                chunks += line.startswith("data: {")
                if chunks == 40:
                    break
            wait_until(lambda: open_record(spool)["output_tokens"] >= 40, timeout=5,
                       what="the open record shows the 40 chunks relayed")  # fmt: skip
            app.process.send_signal(signal.SIGKILL)
            app.process.wait(timeout=10)
    connection.close()
    streamed = open_record(spool)["output_tokens"]
    assert 40 <= streamed < 200, "the process was not killed mid-stream: the test proves nothing"
    reservation = CreditReservation.objects.get(request_id=request_id)
    assert reservation.status == CreditReservation.Status.HELD

    # then: while the call could still be running, the task leaves it alone
    assert tasks.settle_spooled_calls() == {"settled": 0, "failed": []}
    assert len(list(spool.glob("*.open"))) == 1
    assert not CreditUsageAttribution.objects.exists()

    # ... once it could not (its time limit and the grace passed), the task charges it, once
    age_open_records(spool, seconds=3600)
    assert tasks.settle_spooled_calls() == {"settled": 1, "failed": []}
    assert tasks.settle_spooled_calls() == {"settled": 0, "failed": []}
    assert tasks.expire_reservations() == {"expired": 0}
    row = CreditUsageAttribution.objects.get()
    assert row.request_id == request_id
    assert (row.input_tokens, row.output_tokens) == (ESTIMATED_PROMPT_TOKENS, streamed)
    assert row.credits_used == cost_of(prompt_tokens=ESTIMATED_PROMPT_TOKENS, completion_tokens=streamed)
    assert row.credits_used > cost_of(prompt_tokens=ESTIMATED_PROMPT_TOKENS, completion_tokens=0)
    assert row.request_metadata["usage_source"] == "process_lost"
    assert row.request_metadata["estimate"] == "estimated"
    reservation.refresh_from_db()
    assert (reservation.status, reservation.credits_charged) == ("settled", row.credits_used)
    allocation = UserCreditAllocation.objects.get(user_id=user.pk)
    assert (allocation.used_credits, allocation.reserved_credits) == (row.credits_used, 0)
    assert list(spool.iterdir()) == []
    assert_ledger_clean()


def test_a_reasoning_stream_whose_process_was_killed_is_charged_its_output_bound(
    transactional_db, upstream: FakeUpstream, tmp_path: Path, settings
):
    # given: a reasoning call (reasoning_effort) that is still thinking: no text yet
    team = build_teams(1, 1)[0]
    _, key = team.members[0]
    upstream.behaviour.think_seconds = 20.0
    spool = tmp_path / "spool"
    settings.LLM_SETTLEMENT_SPOOL_DIR = str(spool)
    environment = app_environment(upstream, LLM_SETTLEMENT_SPOOL_DIR=str(spool))
    body = {"model": MODEL, "messages": PROMPT, "max_tokens": 150, "stream": True, "reasoning_effort": "high"}
    with (
        served_app(tmp_path, **environment) as app,
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", f"{app.url}{CHAT}", headers={"Authorization": f"Bearer {key}"}, json=body
        ) as response,
    ):
        assert response.status_code == 200
        # when: the process is killed while the model thinks
        time.sleep(0.5)
        app.process.send_signal(signal.SIGKILL)
        app.process.wait(timeout=10)
    connection.close()
    age_open_records(spool, seconds=3600)
    assert tasks.settle_spooled_calls() == {"settled": 1, "failed": []}

    # then: charged as a reasoning call whose usage never came: its output bound
    row = CreditUsageAttribution.objects.get()
    assert (row.input_tokens, row.output_tokens) == (ESTIMATED_PROMPT_TOKENS, 150)
    assert row.credits_used == cost_of(prompt_tokens=ESTIMATED_PROMPT_TOKENS, completion_tokens=150)
    assert (row.request_metadata["usage_source"], row.request_metadata["estimate"]) == (
        "process_lost",
        "reasoning_bound",
    )
    assert list(spool.iterdir()) == []
    assert_ledger_clean()
