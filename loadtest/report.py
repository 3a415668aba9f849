"""The load test's verdict and its printout: Locust's per-endpoint statistics, the failures the
locustfile tallied, the ledger check and the peak of PostgreSQL connections against the budget.

Pure functions over files and values, so they are tested without a server.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.monitor import ConnectionPeak


@dataclass(frozen=True)
class EndpointStats:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True)
class Failure:
    name: str
    status: int
    code: str
    count: int


@dataclass(frozen=True)
class Budget:
    """The deployment's connection budget as a web process computes it
    (``settings.DB_CONNECTION_BUDGET``, README "Database connections")."""

    web: int
    workers: int
    operators: int
    gateway: int = 0  # the web processes' gateway async pools (LLM_GATEWAY_DB_POOL_SIZE)

    @property
    def total(self) -> int:
        return self.web + self.gateway + self.workers + self.operators


@dataclass
class Outcome:
    host: str
    users: int
    spawn_rate: float
    duration: str
    gateway: str  # "on", or why it is off
    endpoints: list[EndpointStats]
    total: EndpointStats | None
    failures: list[Failure]
    rate_limit_waits: int
    unprepared_users: int
    drifts: list[str] | None  # None: the ledger was not checked
    ledger_message: str
    connections: ConnectionPeak | None
    budget: Budget | None
    interrupted: bool = False
    problems_running: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LocustResults:
    endpoints: list[EndpointStats]
    total: EndpointStats | None
    failures: list[Failure]
    rate_limit_waits: int
    unprepared_users: int


def _endpoint(row: dict[str, Any]) -> EndpointStats:
    return EndpointStats(
        name=str(row["name"]),
        requests=int(row["requests"]),
        failures=int(row["failures"]),
        rps=float(row["rps"]),
        p50=float(row["p50"]),
        p95=float(row["p95"]),
        p99=float(row["p99"]),
        max=float(row["max"]),
    )


def read_results(path: Path) -> LocustResults:
    """What the locustfile wrote when Locust quit: per-endpoint statistics, failures by
    endpoint, status and code, rate-limit waits, users that found no prepared person."""
    data: dict[str, Any] = json.loads(path.read_text())
    total = _endpoint(data["total"]) if data.get("total") else None
    return LocustResults(
        endpoints=[_endpoint(row) for row in data.get("endpoints", [])],
        total=total if total is not None and total.requests else None,
        failures=[
            Failure(str(f["name"]), int(f["status"]), str(f["code"]), int(f["count"]))
            for f in data["failures"]
        ],
        rate_limit_waits=int(data.get("rate_limit_waits", 0)),
        unprepared_users=int(data.get("unprepared_users", 0)),
    )


def connection_budget(figures: dict[str, Any]) -> Budget | None:
    """The budget from a web process's ``DB_CONNECTION_BUDGET``; None when it pools nothing."""
    if not figures.get("web"):
        return None
    return Budget(
        web=int(figures["web"]),
        workers=int(figures["workers"]),
        operators=int(figures["operators"]),
        gateway=int(figures.get("gateway", 0)),
    )


def problems(outcome: Outcome) -> list[str]:
    """Why the run fails; empty when it passes."""
    found = list(outcome.problems_running)
    failed = sum(f.count for f in outcome.failures)
    counted = outcome.total.failures if outcome.total else 0
    if failed or counted:
        found.append(f"{max(failed, counted):,} failed requests")
    if outcome.total is None or outcome.total.requests == 0:
        found.append("no request was made")
    if outcome.unprepared_users:
        found.append(f"{outcome.unprepared_users} users found no prepared person (run prepare_loadtest)")
    if outcome.drifts is None:
        found.append("the ledger was not reconciled")
    elif outcome.drifts:
        found.append(f"{len(outcome.drifts)} ledger drift(s)")
    if outcome.connections and outcome.budget and outcome.connections.peak > outcome.budget.total:
        found.append(
            f"peak of {outcome.connections.peak} connections over the budget of {outcome.budget.total}"
        )
    if outcome.interrupted:
        found.append("interrupted")
    return found


def _ms(value: float) -> str:
    return f"{value:,.0f}"


def format_report(outcome: Outcome) -> str:
    lines = [
        "",
        f"== Load test: {outcome.users} users (spawn {outcome.spawn_rate:g}/s) for {outcome.duration} "
        f"against {outcome.host} ==",
        f"Gateway: {outcome.gateway}",
    ]
    total = outcome.total
    if total is not None:
        share = 100 * total.failures / total.requests if total.requests else 0.0
        lines.append(
            f"Throughput: {total.rps:,.1f} requests/s ({total.requests:,} requests, "
            f"{total.failures:,} failed = {share:.2f} %)"
        )
    width = max([len(e.name) for e in outcome.endpoints] + [20])
    lines += [
        "",
        f"{'endpoint':<{width}}  {'requests':>8}  {'failed':>6}  {'req/s':>6}  "
        f"{'p50':>6}  {'p95':>6}  {'p99':>6}  {'max':>6}  (ms)",
    ]
    for e in [*sorted(outcome.endpoints, key=lambda e: e.name), *([total] if total else [])]:
        label = "all" if e is total else e.name
        lines.append(
            f"{label:<{width}}  {e.requests:>8,}  {e.failures:>6,}  {e.rps:>6.1f}  "
            f"{_ms(e.p50):>6}  {_ms(e.p95):>6}  {_ms(e.p99):>6}  {_ms(e.max):>6}"
        )
    lines += ["", "Errors by status and error code:"]
    if not outcome.failures:
        lines.append("  none")
    else:
        by_code: dict[tuple[int, str], list[Failure]] = {}
        for failure in outcome.failures:
            by_code.setdefault((failure.status, failure.code), []).append(failure)
        ranked = sorted(by_code.items(), key=lambda item: -sum(f.count for f in item[1]))
        for (status, code), rows in ranked:
            where = ", ".join(f"{f.name}: {f.count:,}" for f in sorted(rows, key=lambda f: -f.count))
            lines.append(f"  {status or 'no answer'} {code}: {sum(f.count for f in rows):,}  ({where})")
    lines.append(
        f"Client-side rate-limit waits: {outcome.rate_limit_waits:,}"
        + (" (a person reached 90 % of a per-user limit and waited)" if outcome.rate_limit_waits else "")
    )
    lines.append(f"Ledger: {outcome.ledger_message}")
    for drift in outcome.drifts or []:
        lines.append(f"  {drift}")
    lines += _connection_lines(outcome)
    if outcome.files:
        lines.append("Files: " + ", ".join(outcome.files))
    found = problems(outcome)
    lines += ["", "RESULT: " + ("PASS" if not found else "FAIL: " + "; ".join(found)), ""]
    return "\n".join(lines)


def _connection_lines(outcome: Outcome) -> list[str]:
    peak = outcome.connections
    if peak is None:
        return ["PostgreSQL connections: not measured"]
    lines = [
        f"PostgreSQL connections to {peak.database!r} (sampled every 0.5 s, {peak.samples} samples; "
        "the load test's own two left out):",
        f"  peak {peak.peak} at {peak.peak_at:.0f} s (mean {peak.mean:.1f}; at most {peak.peak_active} "
        f"seen running a statement); whole server peak {peak.peak_server}; "
        f"max_connections {peak.max_connections} ({peak.superuser_reserved} reserved for superusers)",
    ]
    if peak.sessions_opened is not None:
        requests = outcome.total.requests if outcome.total else 0
        per = f" (one per {requests / peak.sessions_opened:,.1f} requests)" if peak.sessions_opened else ""
        lines.append(f"  new connections opened during the run: {peak.sessions_opened:,}{per}")
    if peak.failed_samples:
        lines.append(f"  {peak.failed_samples} samples failed")
    budget = outcome.budget
    if budget is None:
        lines.append(
            "  budget: none (the web process has no connection pool: DB_POOL_ENABLED is off), "
            f"so only max_connections ({peak.max_connections}) bounds the peak"
        )
    else:
        verdict = "within budget" if peak.peak <= budget.total else "OVER BUDGET"
        lines.append(
            f"  budget: web pools {budget.web} + gateway pools {budget.gateway} + Celery {budget.workers} "
            "+ operators' reserve "
            f"{budget.operators} = {budget.total}: peak {peak.peak} {verdict}"
        )
        if budget.total > peak.max_connections - peak.superuser_reserved:
            lines.append(
                f"  the budget itself is more than the server accepts ({peak.max_connections} - "
                f"{peak.superuser_reserved} reserved): raise max_connections or lower the pool"
            )
    return lines
