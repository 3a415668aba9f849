"""A settlement the database refused is spooled to disk and charged later, exactly once, with the
upstream's usage, even when the web process's own retry gives up or the process dies (issue 11
§2, "Failed settlement")."""

import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from billing import tasks
from billing.models import CreditReservation, CreditUsageAttribution, UserCreditAllocation
from tests.fake_upstream import FakeUpstream, running_upstream
from tests.faults.conftest import Database, wait_until
from tests.faults.test_database_outage import CHAT, POOL_TIMEOUT, PROMPT, cost_of, expire_every_hold
from tests.load.test_served_under_load import MODEL, app_environment, assert_ledger_clean, build_teams
from tests.served import ServedApp, served_app


@pytest.fixture
def upstream() -> Any:
    with running_upstream() as up:
        yield up


def answered_while_the_database_is_down(
    app: ServedApp, upstream: FakeUpstream, database: Database, key: str
) -> dict[str, httpx.Response]:
    """A JSON and a streamed call, both forwarded upstream; PostgreSQL stops before they are
    answered (the upstream takes 2 s) and stays stopped."""
    body = {"model": MODEL, "messages": PROMPT, "max_tokens": 50}
    answers: dict[str, httpx.Response] = {}

    def call(name: str, payload: dict[str, Any]) -> None:
        with httpx.Client(timeout=30) as client:
            answers[name] = client.post(
                f"{app.url}{CHAT}", json=payload, headers={"Authorization": f"Bearer {key}"}
            )

    callers = [
        threading.Thread(target=call, args=("json", body)),
        threading.Thread(target=call, args=("stream", {**body, "stream": True})),
    ]
    for caller in callers:
        caller.start()
    wait_until(lambda: len(upstream.behaviour.requests) == 2, timeout=20, what="both calls forwarded")
    database.stop()
    assert answers == {}, "answered before PostgreSQL stopped: the test proves nothing"
    for caller in callers:
        caller.join(timeout=30)
    assert answers["json"].headers["X-Settlement"] == "pending", answers["json"].text
    assert "settlement=pending" in answers["stream"].text
    return answers


def request_ids(answers: dict[str, httpx.Response]) -> set[str]:
    return {answer.headers["X-Request-Id"] for answer in answers.values()}


def assert_charged_once_with_the_upstreams_usage(requests: set[str], user_pk: int) -> None:
    # the fake upstream's usage: 2 prompt words, 20 completion tokens
    expected = cost_of(prompt_tokens=2, completion_tokens=20)
    rows = CreditUsageAttribution.objects.filter(request_id__in=requests)
    assert sorted(rows.values_list("request_id", "input_tokens", "output_tokens", "credits_used")) == sorted(
        (request_id, 2, 20, expected) for request_id in requests
    )
    assert UserCreditAllocation.objects.get(user_id=user_pk).used_credits == 2 * expected
    assert set(CreditReservation.objects.values_list("status", flat=True)) == {"settled"}


def test_a_settlement_whose_retry_gave_up_is_charged_once_by_the_task_with_the_upstreams_usage(
    database: Database, upstream: FakeUpstream, tmp_path: Path, settings
):
    # given: a web process that retries a refused settlement for 1 s only
    team = build_teams(1, 1)[0]
    user, key = team.members[0]
    upstream.behaviour.latency = 2.0
    spool = tmp_path / "spool"
    settings.LLM_SETTLEMENT_SPOOL_DIR = str(spool)
    environment = app_environment(
        upstream,
        DB_POOL_TIMEOUT=str(POOL_TIMEOUT),
        LLM_SETTLEMENT_RETRY_SECONDS="1",
        LLM_SETTLEMENT_SPOOL_DIR=str(spool),
    )
    with served_app(tmp_path, **environment) as app:
        # when: both calls are answered while PostgreSQL is down, and the retry gives up
        answers = answered_while_the_database_is_down(app, upstream, database, key)
        wait_until(lambda: app.log_text().count("gave up settling a call") == 2, timeout=30,
                   what=f"the retry gave up:\n{app.log_text()[-3000:]}")  # fmt: skip
        assert len(list(spool.glob("*.json"))) == 2
        database.start()
        connection.close()
        assert not CreditUsageAttribution.objects.exists(), (
            "the retry did not give up: the test proves nothing"
        )

        # then: the task charges both, once, from the spool; a second run changes nothing
        assert tasks.settle_spooled_calls() == {"settled": 2, "failed": []}
        assert tasks.settle_spooled_calls() == {"settled": 0, "failed": []}
    assert list(spool.iterdir()) == []
    assert_charged_once_with_the_upstreams_usage(request_ids(answers), user.pk)
    assert expire_every_hold() == 0
    assert_ledger_clean()


def test_a_hold_owed_a_settlement_by_a_killed_process_is_settled_not_released_by_the_expiry_task(
    database: Database, upstream: FakeUpstream, tmp_path: Path, settings
):
    # given: a web process that would retry for a day
    team = build_teams(1, 1)[0]
    user, key = team.members[0]
    upstream.behaviour.latency = 2.0
    spool = tmp_path / "spool"
    settings.LLM_SETTLEMENT_SPOOL_DIR = str(spool)
    environment = app_environment(
        upstream, DB_POOL_TIMEOUT=str(POOL_TIMEOUT), LLM_SETTLEMENT_SPOOL_DIR=str(spool)
    )
    with served_app(tmp_path, **environment) as app:
        # when: both calls are answered while PostgreSQL is down, and the process is killed
        answers = answered_while_the_database_is_down(app, upstream, database, key)
        app.process.send_signal(signal.SIGKILL)
        app.process.wait(timeout=10)
    database.start()
    connection.close()
    assert not CreditUsageAttribution.objects.exists()
    # ... and the holds have outlived their expiry by the time the expiry task runs
    CreditReservation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.expire_reservations() == {"expired": 0}

    # then: charged once with the upstream's usage, nothing released, nothing left spooled
    assert list(spool.iterdir()) == []
    assert_charged_once_with_the_upstreams_usage(request_ids(answers), user.pk)
    assert tasks.settle_spooled_calls() == {"settled": 0, "failed": []}
    assert_ledger_clean()
