"""loadtest/report.py: the verdict and the printout of a load test, from files and values."""

import json

from loadtest.monitor import ConnectionPeak
from loadtest.report import (
    Budget,
    EndpointStats,
    Failure,
    Outcome,
    connection_budget,
    format_report,
    problems,
    read_results,
)

POOL = "GET /api/v1/org-billing/credits/{org}"


def stats(name: str, requests: int = 100, failures: int = 0) -> EndpointStats:
    return EndpointStats(name, requests, failures, rps=10.0, p50=20, p95=80, p99=150, max=400)


def peak(count: int = 40) -> ConnectionPeak:
    return ConnectionPeak(
        database="orgbilling",
        max_connections=100,
        superuser_reserved=3,
        samples=300,
        peak=count,
        peak_at=63.0,
        peak_active=5,
        peak_server=count + 2,
        mean=21.5,
        failed_samples=0,
        sessions_opened=50,
    )


def outcome(**overrides) -> Outcome:
    values = {
        "host": "http://127.0.0.1:8000",
        "users": 200,
        "spawn_rate": 6.7,
        "duration": "150s",
        "gateway": "on",
        "endpoints": [stats(POOL)],
        "total": stats("Aggregated"),
        "failures": [],
        "rate_limit_waits": 0,
        "unprepared_users": 0,
        "drifts": [],
        "ledger_message": "reconcile_credits: no drift",
        "connections": peak(),
        "budget": None,
    }
    return Outcome(**{**values, **overrides})


def test_read_results_takes_the_locustfile_tally(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(
        json.dumps(
            {
                "endpoints": [
                    {
                        "name": POOL,
                        "requests": 9,
                        "failures": 2,
                        "rps": 1.5,
                        "p50": 20,
                        "p95": 90,
                        "p99": 120,
                        "max": 130,
                    }
                ],
                "total": {
                    "name": "Aggregated",
                    "requests": 9,
                    "failures": 2,
                    "rps": 1.5,
                    "p50": 20,
                    "p95": 90,
                    "p99": 120,
                    "max": 130,
                },
                "failures": [{"name": POOL, "status": 503, "code": "database_busy", "count": 2}],
                "rate_limit_waits": 1,
                "unprepared_users": 0,
            }
        )
    )

    results = read_results(path)

    assert results.endpoints[0].p99 == 120 and results.total.requests == 9
    assert results.failures == [Failure(POOL, 503, "database_busy", 2)]
    assert results.rate_limit_waits == 1


def test_a_clean_run_passes_and_says_so():
    report = format_report(outcome())

    assert problems(outcome()) == []
    assert "RESULT: PASS" in report
    assert "Throughput: 10.0 requests/s" in report
    assert "peak 40 at 63 s" in report and "max_connections 100" in report
    assert "budget: none" in report
    assert "new connections opened during the run: 50 (one per 2.0 requests)" in report


def test_failures_drift_and_an_empty_run_each_fail_the_run():
    failed = outcome(
        total=stats("Aggregated", failures=3),
        failures=[Failure(POOL, 503, "service_unavailable", 2), Failure(POOL, 429, "throttled", 1)],
    )
    assert problems(failed) == ["3 failed requests"]
    report = format_report(failed)
    assert "503 service_unavailable: 2" in report and "429 throttled: 1" in report
    assert problems(outcome(drifts=["DRIFT pool loadtest-01"])) == ["1 ledger drift(s)"]
    assert problems(outcome(drifts=None)) == ["the ledger was not reconciled"]
    assert "no request was made" in problems(outcome(total=None, endpoints=[]))


def test_the_peak_is_held_against_the_pool_budget():
    budget = Budget(web=40, workers=3, operators=5)

    assert budget.total == 48
    assert problems(outcome(connections=peak(48), budget=budget)) == []
    assert problems(outcome(connections=peak(49), budget=budget)) == [
        "peak of 49 connections over the budget of 48"
    ]
    assert "peak 49 OVER BUDGET" in format_report(outcome(connections=peak(49), budget=budget))


def test_the_budget_is_the_web_process_budget_and_none_without_a_pool():
    assert connection_budget({"web": 0, "workers": 2, "operators": 10, "total": 12}) is None
    budget = connection_budget({"web": 20, "workers": 2, "operators": 10, "total": 32})
    assert budget is not None and budget.total == 32


def test_the_runner_reads_the_budget_a_web_process_computes(monkeypatch):
    from loadtest.run import web_process_budget

    monkeypatch.setenv("DB_POOL_MAX_SIZE", "13")
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    # 2 web processes x (13 + the gateway's async pool of 3) + 2 worker children + 10 reserve
    assert web_process_budget() == {"web": 26, "gateway": 6, "workers": 2, "operators": 10, "total": 44}
