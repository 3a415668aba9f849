"""Statement timeouts on the served app: a runaway statement ends with 503 ``database_timeout``
and gives its row locks back; reports (analytics, CSV export, dashboards) run under the longer
report limit while ordinary API reads keep the short one.

A statement is made to run long the real way: it waits for a lock another connection holds,
with ``DB_LOCK_TIMEOUT_MS`` above ``DB_STATEMENT_TIMEOUT_MS`` so the statement timeout fires first.
"""

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from django.db import connection

from billing.models import CreditUsageAttribution, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from orgbilling.db import report_timeout
from tests.faults.conftest import assert_error_shape, wait_until
from tests.load.test_served_under_load import MODEL, assert_ledger_clean, build_teams
from tests.served import ServedApp, run_database_url, served_app

API = "/api/v1/org-billing"
STATEMENT_MS = 400
REPORT_MS = 8000
# Longer than the API's statement limit, well within the reports'.
BLOCKED_FOR = 1.5


@pytest.fixture(scope="module")
def app(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    environment = {
        "DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_MS),
        "DB_LOCK_TIMEOUT_MS": "10000",
        "DB_REPORT_STATEMENT_TIMEOUT_MS": str(REPORT_MS),
        "DB_POOL_MIN_SIZE": "1",
    }
    with served_app(tmp_path_factory.mktemp("timeouts"), **environment) as served:
        yield served


def database_url() -> str:
    return run_database_url().replace("postgres://", "postgresql://")


def app_backends_waiting_on_a_lock(probe: psycopg.Connection[Any]) -> int:
    row = probe.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'orgbilling-web' AND wait_event_type = 'Lock'"
    ).fetchone()
    return int(row[0]) if row else 0


def app_locks(probe: psycopg.Connection[Any]) -> int:
    """Row, tuple and transaction locks held by the app's backends now."""
    row = probe.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE a.datname = current_database() AND a.application_name = 'orgbilling-web'"
        " AND l.locktype IN ('relation', 'tuple', 'transactionid') AND l.granted"
    ).fetchone()
    return int(row[0]) if row else 0


def pool_row_is_free(probe: psycopg.Connection[Any], org_id: str) -> bool:
    try:
        with probe.transaction():
            probe.execute(
                "SELECT 1 FROM organization_credit_pools WHERE org_id = %s FOR UPDATE NOWAIT", [org_id]
            )
    except psycopg.errors.LockNotAvailable:
        return False
    return True


def test_a_charge_stuck_past_the_statement_timeout_answers_database_timeout_and_keeps_no_lock(
    app: ServedApp, transactional_db: Any
):
    # given: a member's allocation row locked by a transaction that does not end
    team = build_teams(1, 1)[0]
    user, _ = team.members[0]
    allocation = UserCreditAllocation.objects.get(user=user)
    body = {"user_id": user.username, "org_id": team.org.id, "model": MODEL, "input_tokens": 100,
            "output_tokens": 20, "request_id": "runaway-1"}  # fmt: skip
    headers = {"Authorization": f"Bearer {team.service_key}"}
    answers: list[tuple[httpx.Response, float]] = []

    def charge() -> None:
        started = time.monotonic()
        answer = httpx.post(f"{app.url}{API}/charges", json=body, headers=headers, timeout=30)
        answers.append((answer, time.monotonic() - started))

    with (
        psycopg.connect(database_url()) as blocker,
        psycopg.connect(database_url(), autocommit=True) as probe,
    ):
        blocker.execute("SELECT 1 FROM user_credit_allocations WHERE id = %s FOR UPDATE", [allocation.id])
        # when: a charge locks the pool row, then waits for the allocation row
        caller = threading.Thread(target=charge)
        caller.start()
        wait_until(lambda: app_backends_waiting_on_a_lock(probe) == 1, timeout=5, what="the charge waits")
        held_while_waiting = not pool_row_is_free(probe, team.org.id)
        caller.join(timeout=30)
        # then: the statement timeout ended it promptly with a retryable 503 database_timeout
        answer, waited = answers[0]
        assert_error_shape(answer, 503, {"database_timeout"})
        assert answer.headers["Retry-After"] == "5"
        assert waited < 3
        # and the pool row it had locked is free again while the allocation is still held
        assert held_while_waiting, "the waiting charge did not hold the pool row: the test proves nothing"
        assert pool_row_is_free(probe, team.org.id)
        assert app_locks(probe) == 0
        blocker.rollback()
    assert not CreditUsageAttribution.objects.filter(request_id="runaway-1").exists()
    # and once the lock is gone the retry is charged, once
    retried = httpx.post(f"{app.url}{API}/charges", json=body, headers=headers, timeout=30)
    assert retried.status_code == 201, retried.text
    assert CreditUsageAttribution.objects.filter(request_id="runaway-1").count() == 1
    assert_ledger_clean()


def test_a_report_gets_the_longer_statement_timeout_and_an_api_read_the_short_one(
    app: ServedApp, transactional_db: Any
):
    # given: an org with usage, and the ledger tables a report reads locked for 1.5 s
    team = build_teams(1, 2)[0]
    org = team.org.id
    headers = {"Authorization": f"Bearer {team.admin_key}"}
    user, _ = team.members[0]
    charged = httpx.post(
        f"{app.url}{API}/charges",
        json={"user_id": user.username, "org_id": org, "model": MODEL, "input_tokens": 10, "output_tokens": 5,
              "request_id": "report-usage-1"},
        headers={"Authorization": f"Bearer {team.service_key}"},
        timeout=30,
    )  # fmt: skip
    assert charged.status_code == 201
    calls = {
        "pool (API read)": f"{API}/credits/{org}",
        "org dashboard": f"{API}/billing/org/{org}",
        "usage by model (CSV)": f"{API}/usage/{org}/by-model?format=csv",
        "usage by user": f"{API}/usage/{org}/by-user",
        "usage statistics": f"{API}/credits/{org}/usage",
    }
    answers: dict[str, tuple[httpx.Response, float]] = {}

    def get(name: str, path: str) -> None:
        started = time.monotonic()
        answer = httpx.get(f"{app.url}{path}", headers=headers, timeout=30)
        answers[name] = (answer, time.monotonic() - started)

    with (
        psycopg.connect(database_url()) as blocker,
        psycopg.connect(database_url(), autocommit=True) as probe,
    ):
        blocker.execute(
            "LOCK TABLE organization_credit_pools, user_credit_allocations, credit_usage_attribution,"
            " usage_daily_rollups IN ACCESS EXCLUSIVE MODE"
        )
        # when: the API read and the reports run into the lock
        callers = [threading.Thread(target=get, args=item) for item in calls.items()]
        for caller in callers:
            caller.start()
        wait_until(
            lambda: app_backends_waiting_on_a_lock(probe) >= len(calls) - 1, timeout=5, what="reports wait"
        )
        time.sleep(BLOCKED_FOR)
        blocker.rollback()
        for caller in callers:
            caller.join(timeout=30)

    # then: the API read was cut at its short limit
    read, waited = answers.pop("pool (API read)")
    assert_error_shape(read, 503, {"database_timeout"})
    assert waited < BLOCKED_FOR
    # and every report waited the lock out under the longer limit, and answered
    for name, (answer, waited) in answers.items():
        assert answer.status_code == 200, (name, answer.status_code, answer.text[:300])
        assert waited >= BLOCKED_FOR, (name, waited)
    assert answers["usage by model (CSV)"][0].text.startswith("period_start,model,")
    assert_ledger_clean()


@pytest.mark.parametrize(
    ("role", "expected"),
    [("web", "8s"), ("worker", "5min"), ("command", "0")],
)
def test_report_timeout_lengthens_the_process_limit_and_never_shortens_or_adds_one(
    settings: Any, transactional_db: Any, role: str, expected: str
):
    # given: a process of this role (web: 5 s; worker: 5 min; command: none)
    settings.PROCESS_ROLE = role
    settings.DB_STATEMENT_TIMEOUT_MS = 5_000
    settings.DB_WORKER_STATEMENT_TIMEOUT_MS = 300_000
    settings.DB_REPORT_STATEMENT_TIMEOUT_MS = REPORT_MS
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()
        # when / then: inside a report the limit is the longer one; afterwards the process's again
        with report_timeout():
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == (expected,)
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == before


def test_reconciliation_runs_under_the_report_timeout(settings: Any, transactional_db: Any):
    # A web process's short limit would cut it; the reconciliation gets the report limit.
    settings.PROCESS_ROLE = "web"
    settings.DB_STATEMENT_TIMEOUT_MS = STATEMENT_MS
    settings.DB_REPORT_STATEMENT_TIMEOUT_MS = REPORT_MS
    build_teams(1, 1)
    with psycopg.connect(database_url()) as blocker:
        blocker.execute("LOCK TABLE credit_usage_attribution IN ACCESS EXCLUSIVE MODE")
        timer = threading.Timer(STATEMENT_MS / 1000 * 2, blocker.rollback)
        timer.start()
        try:
            with connection.cursor() as cursor:  # this process's own limit: the web one
                cursor.execute("SET statement_timeout = %s", [STATEMENT_MS])
            started = time.monotonic()
            assert find_all_drifts() == []
            assert time.monotonic() - started >= STATEMENT_MS / 1000
        finally:
            timer.join()
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")
