"""``make loadtest`` end to end, small: loadtest/run.py prepares six people, runs the
locustfile with Locust (from ``.venv-load``) for a few seconds against the served app and a
fake upstream, under the real per-user rate limits, then reconciles and reports. Keeps the
locustfile from rotting: every task of every kind of user runs at least once."""

import json
import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from loadtest.run import ROOT, Abort, main, parse_args, probe_gateway
from tests.fake_upstream import running_upstream
from tests.served import served_in_thread

LOCUST = ROOT / ".venv-load" / "bin" / "locust"
ENDPOINTS = {
    "GET /api/v1/org-billing/credits/{org}",
    "GET /api/v1/org-billing/credits/{org}/usage",
    "GET /api/v1/org-billing/billing/user",
    "POST /api/v1/llm/chat/completions",
    "POST /api/v1/llm/chat/completions (stream)",
    "GET /api/v1/org-billing/credits/{org}/allocations",
    "GET /api/v1/org-billing/billing/org/{org}",
    "GET /api/v1/org-billing/usage/{org}/by-user",
    "GET /api/v1/org-billing/usage/{org}/by-model",
    "GET /api/v1/org-billing/usage/{org}/by-model?format=csv",
    "POST /api/v1/org-billing/credits/{org}/allocate",
    "POST /api/v1/org-billing/credits/{org}/transfer",
    "POST /api/v1/org-billing/charges",
}


@pytest.fixture
def locust() -> Path:
    if not LOCUST.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{LOCUST} missing: `make test` builds it (make loadtest-venv)")
        pytest.skip(f"{LOCUST} missing: run `make loadtest-venv`")
    return LOCUST


@pytest.fixture
def served(settings, plans):
    """The app on loopback, forwarding to a fake upstream, with production's rate limits."""
    settings.API_RATE_LIMITS = {"read": "100/minute", "write": "20/minute", "subscription": "5/hour"}
    with running_upstream() as upstream:
        upstream.behaviour.record = False
        settings.LLM_UPSTREAM_BASE_URL = upstream.base_url
        settings.LLM_UPSTREAM_TIMEOUT_SECONDS = 10.0
        with served_in_thread() as url:
            yield url


@pytest.mark.slow
def test_a_short_load_test_runs_every_task_without_an_error(locust, served, tmp_path, capsys):
    code = main(
        [
            "--host",
            served,
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--duration",
            "6s",
            "--think-scale",
            "0.2",
            "--every-task-first",
            "--allow-non-debug",
            "--locust",
            str(locust),
            "--out-dir",
            str(tmp_path / "out"),
            "--keys-file",
            str(tmp_path / "keys.json"),
        ]
    )

    captured = capsys.readouterr()
    report = captured.out
    log = tmp_path / "out" / "locust.log"
    assert code == 0, report + captured.err + (log.read_text() if log.exists() else "")
    assert "RESULT: PASS" in report and "Gateway: on" in report
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {e["name"] for e in results["endpoints"]} == ENDPOINTS
    assert results["failures"] == [] and results["rate_limit_waits"] == 0
    assert "Ledger: reconcile_credits: Ledger reconciled" in report
    assert "PostgreSQL connections to" in report


def test_without_an_upstream_the_gateway_tasks_are_skipped_and_said_so(settings, plans, tmp_path):
    keys = tmp_path / "keys.json"
    call_command(
        "prepare_loadtest", "--users", "3", "--keys-file", str(keys), "--allow-non-debug", stdout=StringIO()
    )
    settings.LLM_UPSTREAM_BASE_URL = ""
    with served_in_thread() as url:
        assert "SKIPPED" in probe_gateway(url, keys, "auto")
        assert probe_gateway(url, keys, "off").startswith("off")
        with pytest.raises(Abort, match="gateway_not_configured"):
            probe_gateway(url, keys, "on")


def test_the_run_refuses_to_start_without_a_server(tmp_path, capsys):
    code = main(
        ["--host", "http://127.0.0.1:9", "--out-dir", str(tmp_path), "--keys-file", str(tmp_path / "k.json")]
    )

    assert code == 2
    assert "make run" in capsys.readouterr().err


def test_arguments_are_checked_before_anything_runs():
    assert parse_args(["--users", "300"]).spawn_rate == 10.0
    for bad in (["--users", "2"], ["--duration", "soon"], ["--spawn-rate", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
