"""Deduction benchmark: ``deduct_credits`` against a hand-written psycopg floor, same run, same DB.

Run it through make (a throwaway PostgreSQL with default durability, migrated)::

    make bench                                   # full run, about 2-3 minutes
    make bench BENCH_ARGS="--quick"              # c=1,8 only, 2 s cells
    make bench BENCH_ARGS="--profile --quick"    # plus cProfile of a one-process service loop

or against a database of your own (it only adds rows, under a random run tag)::

    DATABASE_URL=postgres://... DJANGO_SETTINGS_MODULE=orgbilling.settings.dev \\
        .venv/bin/python benchmarks/deductions.py --duration 5 --concurrency 1,8,32

What it does
------------
* Builds two workloads through the services (``create_organization``, ``ensure_user``,
  ``add_member``, ``add_credits_to_pool``, ``allocate_credits_to_user``), with allocations far
  larger than the run can spend: **hot** (one org, one user: every deduction fights for the same
  pool and allocation rows) and **spread** (1,000 users over 100 orgs, picked at random).
* Forks worker processes (Python threads would share one GIL) after ``django.setup()`` and before
  any database connection; each holds its own Django connection and its own psycopg connection.
* For each workload and concurrency, runs a closed loop in ``c`` workers, first with the
  **floor** (the service's own three statements, imported from
  ``billing.ledger.sql``, run on a bare psycopg 3 connection: charge the pool row, charge
  the member's active allocation, insert the attribution row, commit) then with the
  **service** (``billing.services.deduct_credits``, users preloaded). Both draw the same random
  (org, user, tokens) sequence and write the same tables, so they share data sizes. Each cell
  has a warm-up, then a measured window: ops/s, p50/p99 latency, and the service/floor throughput ratio.
* Checks correctness after the run: ``find_all_drifts()`` is empty, every allocation's
  ``used_credits`` equals the sum of its attribution rows, the rows written by each side equal
  the deductions it counted, and no deadlock or unexpected error happened (counted in the
  workers and in ``pg_stat_database``).

A benchmark is a measurement: missing the target still exits 0. A failed correctness check
exits 1; a crashed worker exits 2.

Django's ``DEBUG`` is forced off (``DJANGO_DEBUG=false``) so the service runs as in production,
without the query log; ``--debug`` keeps the settings' own value (on with the dev settings).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import multiprocessing as mp
import os
import platform
import pstats
import queue
import random
import secrets
import sys
import time
import traceback
from array import array
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from re import escape as re_escape
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

AMOUNT = 50  # millicredits per deduction
SERVICE_NAME = "bench-model"
HOT_ALLOCATION = 10**12  # millicredits: far more than any run can spend
SPREAD_ALLOCATION = 10**10
TARGET_OPS = 1000.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 20.0
TARGET_CELL = ("spread", 8)

# --------------------------------------------------------------------------------------------
# The floor: the service's own three statements (imported from billing.ledger.sql so
# the two can never drift apart), run directly on a psycopg connection with no Django at all.
# --------------------------------------------------------------------------------------------


class Refused(Exception):
    """A deduction refused for a business reason (insufficient credits, no allocation, ...)."""


class Unexpected(Exception):
    """A deduction that did something the benchmark never asks for (e.g. a replay)."""


@dataclass(frozen=True)
class Target:
    org_id: str
    user_id: int


class FloorDeducer:
    def __init__(self, dsn: str) -> None:
        import psycopg
        from psycopg.types.json import Jsonb

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.jsonb = Jsonb

    def __call__(self, target: Target, request_id: str, input_tokens: int, output_tokens: int) -> None:
        from billing.ledger.sql import CHARGE_ALLOCATION, CHARGE_POOL, INSERT_ORG_CHARGE

        now = datetime.now(UTC)
        params = {
            "org_id": target.org_id,
            "user_id": target.user_id,
            "amount": AMOUNT,
            "now": now,
            "today": now.date(),
            "request_id": request_id,
            "service_type": "llm",
            "service_name": SERVICE_NAME,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "metadata": self.jsonb({}),
        }
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(CHARGE_POOL, params)
            if cur.fetchone() is None:
                raise Refused("pool cannot cover the charge")
            cur.execute(CHARGE_ALLOCATION, params)
            row = cur.fetchone()
            if row is None:
                raise Refused("no usable allocation with enough credits")
            params["allocation_id"], params["balance_after"] = row[0], row[3]
            cur.execute(INSERT_ORG_CHARGE, params)
            if cur.fetchone() is None:
                raise Unexpected(f"request id {request_id} already charged")

    def backend_pid(self) -> int | None:
        return self.conn.info.backend_pid

    def close(self) -> None:
        self.conn.close()


class ServiceDeducer:
    def __init__(self, user_ids: list[int]) -> None:
        from organizations.models import User

        self.users = User.objects.in_bulk(sorted(set(user_ids)))

    def backend_pid(self) -> int | None:
        from django.db import connection

        connection.ensure_connection()
        return connection.connection.info.backend_pid

    def __call__(self, target: Target, request_id: str, input_tokens: int, output_tokens: int) -> None:
        from billing.services import deduct_credits

        result = deduct_credits(
            user=self.users[target.user_id],
            org_id=target.org_id,
            amount=AMOUNT,
            request_id=request_id,
            service_name=SERVICE_NAME,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        if not result.success or result.replayed:
            raise Unexpected(f"deduction {request_id}: {result}")


# --------------------------------------------------------------------------------------------
# One cell of the closed loop, in one worker.
# --------------------------------------------------------------------------------------------


@dataclass
class LoopStats:
    ok: int = 0  # committed deductions, warm-up included (what the ledger must show)
    refused: int = 0
    deadlocks: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies: bytes = b""  # array('d') of seconds, measured window only
    attempts: int = 0
    client_cpu_s: float = 0.0  # this worker's CPU over the whole loop
    server_cpu_s: float | None = None  # its PostgreSQL backend's CPU (None: not readable)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def backend_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU of a local PostgreSQL backend, from /proc (None when not local)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _is_deadlock(exc: BaseException) -> bool:
    from psycopg import errors as pg_errors

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, pg_errors.DeadlockDetected):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def run_loop(
    deduct: Any,
    targets: list[Target],
    *,
    seed: int,
    request_prefix: str,
    start_at: float,
    warmup: float,
    duration: float,
) -> LoopStats:
    """Deduct back to back from ``start_at`` for ``warmup + duration`` seconds (monotonic clock)."""
    from billing.errors import InsufficientCredits, NoActiveAllocation, NotAMember

    refusals = (Refused, InsufficientCredits, NoActiveAllocation, NotAMember)
    rng = random.Random(seed)
    stats = LoopStats()
    latencies = array("d")
    measure_from = start_at + warmup
    end = measure_from + duration
    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    backend_pid = deduct.backend_pid()
    client_cpu0, server_cpu0 = time.process_time(), backend_cpu_seconds(backend_pid)
    seq = 0
    n_targets = len(targets)
    while True:
        started = time.monotonic()
        if started >= end:
            break
        target = targets[rng.randrange(n_targets)] if n_targets > 1 else targets[0]
        input_tokens = rng.randrange(100, 2000)
        output_tokens = rng.randrange(10, 500)
        seq += 1
        t0 = time.perf_counter()
        try:
            deduct(target, f"{request_prefix}-{seq}", input_tokens, output_tokens)
        except refusals:
            stats.refused += 1
            continue
        except Exception as exc:
            if _is_deadlock(exc):
                stats.deadlocks += 1
            else:
                stats.errors += 1
            if len(stats.error_samples) < 3:
                stats.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        elapsed = time.perf_counter() - t0
        stats.ok += 1
        if started >= measure_from:
            latencies.append(elapsed)
    stats.latencies = latencies.tobytes()
    stats.attempts = seq
    stats.client_cpu_s = time.process_time() - client_cpu0
    server_cpu1 = backend_cpu_seconds(backend_pid)
    if server_cpu0 is not None and server_cpu1 is not None:
        stats.server_cpu_s = server_cpu1 - server_cpu0
    return stats


# --------------------------------------------------------------------------------------------
# Data set-up, through the services.
# --------------------------------------------------------------------------------------------


def build_org(org_id: str, usernames: list[str], per_user: int, progress: Any = None) -> list[Target]:
    """One organization with a funded pool and one funded allocation per member."""
    from billing.services import add_credits_to_pool, allocate_credits_to_user
    from organizations.services import add_member, create_organization, ensure_user

    create_organization(org_id=org_id, org_name=f"Benchmark {org_id}", created_by=None, actor_label="bench")
    add_credits_to_pool(org_id=org_id, amount=per_user * len(usernames), actor_label="bench")
    targets = []
    for username in usernames:
        user = ensure_user(username=username, email=f"{username}@bench.invalid")
        add_member(org_id=org_id, user=user, actor_label="bench")
        allocate_credits_to_user(org_id=org_id, user=user, amount=per_user, actor_label="bench")
        targets.append(Target(org_id, user.pk))
        if progress is not None:
            progress(1)
    return targets


def spread_org_ids(tag: str, orgs: int) -> list[str]:
    return [f"bench-{tag}-s{i:03d}" for i in range(orgs)]


def spread_usernames(org_id: str, users_per_org: int) -> list[str]:
    return [f"{org_id}-u{j:02d}" for j in range(users_per_org)]


# --------------------------------------------------------------------------------------------
# Worker processes.
# --------------------------------------------------------------------------------------------


def worker_main(idx: int, commands: Any, results: Any, dsn: str) -> None:
    try:
        from django.db import connection

        connection.ensure_connection()
        floor = FloorDeducer(dsn)
        services: dict[str, ServiceDeducer] = {}
        results.put(("ready", idx, None))
    except Exception:
        results.put(("crash", idx, traceback.format_exc()))
        return
    while True:
        command = commands.get()
        if command is None:
            break
        kind, payload = command
        try:
            if kind == "setup":
                targets: list[Target] = []
                for org_id in payload["org_ids"]:
                    targets += build_org(
                        org_id,
                        spread_usernames(org_id, payload["users_per_org"]),
                        payload["per_user"],
                        progress=lambda n: results.put(("progress", idx, n)),
                    )
                results.put(("setup_done", idx, [asdict(t) for t in targets]))
            elif kind == "prepare":
                # Load the users once, outside any measured window.
                services[payload["workload"]] = ServiceDeducer(payload["user_ids"])
                results.put(("prepared", idx, None))
            elif kind == "run":
                targets = [Target(**t) for t in payload["targets"]]
                deduct: Any = floor if payload["impl"] == "floor" else services[payload["workload"]]
                stats = run_loop(
                    deduct,
                    targets,
                    seed=payload["seed"],
                    request_prefix=payload["request_prefix"],
                    start_at=payload["start_at"],
                    warmup=payload["warmup"],
                    duration=payload["duration"],
                )
                results.put(("result", idx, stats))
            else:
                raise ValueError(f"unknown command {kind}")
        except Exception:
            results.put(("crash", idx, traceback.format_exc()))
            return
    floor.close()
    connection.close()


class WorkerCrashed(RuntimeError):
    pass


class Workers:
    def __init__(self, count: int, dsn: str) -> None:
        from django.db import connections

        # Fork before this process opens any database connection: children must not share one.
        if any(conn.connection is not None for conn in connections.all(initialized_only=True)):
            raise RuntimeError("fork the workers before connecting to the database")
        ctx = mp.get_context("fork")
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(count)]
        self.procs = [
            ctx.Process(target=worker_main, args=(i, self.commands[i], self.results, dsn), daemon=True)
            for i in range(count)
        ]
        for proc in self.procs:
            proc.start()

    def __len__(self) -> int:
        return len(self.procs)

    def receive(self, timeout: float) -> tuple[str, int, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.results.get(timeout=1.0)
            except queue.Empty:
                dead = [i for i, p in enumerate(self.procs) if not p.is_alive()]
                if dead:
                    raise WorkerCrashed(f"worker(s) {dead} died") from None
                if time.monotonic() > deadline:
                    raise WorkerCrashed(f"no answer from the workers in {timeout:.0f} s") from None
                continue
            if message[0] == "crash":
                raise WorkerCrashed(f"worker {message[1]} crashed:\n{message[2]}")
            return message

    def broadcast_and_wait(self, kind: str | None, payload: Any = None, timeout: float = 120) -> None:
        """Send a command to every worker (none: just wait for the start-up) and await every ack."""
        if kind is not None:
            for idx in range(len(self)):
                self.send(idx, kind, payload)
        for _ in range(len(self)):
            self.receive(timeout=timeout)

    def send(self, idx: int, kind: str, payload: Any) -> None:
        self.commands[idx].put((kind, payload))

    def stop(self) -> None:
        for q in self.commands:
            q.put(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


# --------------------------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (``p`` in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Cell:
    workload: str
    concurrency: int
    impl: str
    ops: int = 0
    ops_per_s: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    client_cpu_ms: float = math.nan  # per deduction attempted, whole loop
    server_cpu_ms: float = math.nan
    committed: int = 0
    refused: int = 0
    deadlocks: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


def run_cell(
    workers: Workers,
    *,
    workload: str,
    targets: list[Target],
    concurrency: int,
    impl: str,
    tag: str,
    seed: int,
    warmup: float,
    duration: float,
) -> Cell:
    start_at = time.monotonic() + 0.5
    target_dicts = [asdict(t) for t in targets]
    for i in range(concurrency):
        workers.send(
            i,
            "run",
            {
                "impl": impl,
                "workload": workload,
                "targets": target_dicts,
                # The same stream of (org, user, tokens) for the floor and the service.
                "seed": seed * 1000 + concurrency * 100 + i,
                "request_prefix": f"{impl}-{tag}-{workload[0]}{concurrency}-w{i}",
                "start_at": start_at,
                "warmup": warmup,
                "duration": duration,
            },
        )
    cell = Cell(workload, concurrency, impl)
    latencies: list[float] = []
    attempts, client_cpu, server_cpu = 0, 0.0, 0.0
    server_known = True
    for _ in range(concurrency):
        _, _, stats = workers.receive(timeout=warmup + duration + 120)
        attempts += stats.attempts
        client_cpu += stats.client_cpu_s
        if stats.server_cpu_s is None:
            server_known = False
        else:
            server_cpu += stats.server_cpu_s
        samples = array("d")
        samples.frombytes(stats.latencies)
        latencies.extend(samples)
        cell.committed += stats.ok
        cell.refused += stats.refused
        cell.deadlocks += stats.deadlocks
        cell.errors += stats.errors
        cell.error_samples += stats.error_samples
    latencies.sort()
    cell.ops = len(latencies)
    cell.ops_per_s = cell.ops / duration
    cell.p50_ms = percentile(latencies, 50) * 1000
    cell.p99_ms = percentile(latencies, 99) * 1000
    cell.max_ms = (latencies[-1] * 1000) if latencies else math.nan
    if attempts:
        cell.client_cpu_ms = client_cpu / attempts * 1000
        if server_known:
            cell.server_cpu_ms = server_cpu / attempts * 1000
    return cell


def format_cell_line(cell: Cell) -> str:
    extra = ""
    if cell.refused or cell.deadlocks or cell.errors:
        extra = f"  refused={cell.refused} deadlocks={cell.deadlocks} errors={cell.errors}"
    return (
        f"  {cell.workload:<6} c={cell.concurrency:<3} {cell.impl:<7} {cell.ops_per_s:8.0f} ops/s"
        f"  p50 {cell.p50_ms:6.2f} ms  p99 {cell.p99_ms:6.2f} ms  max {cell.max_ms:7.2f} ms"
        f"  CPU/op client {cell.client_cpu_ms:5.2f} ms server {cell.server_cpu_ms:5.2f} ms{extra}"
    )


def _fmt(value: float, spec: str) -> str:
    return "—" if math.isnan(value) else format(value, spec)


def results_table(cells: list[Cell]) -> str:
    """The figures as a Markdown table: one row per workload × concurrency."""
    by_key = {(c.workload, c.concurrency, c.impl): c for c in cells}
    pairs = sorted({(c.workload, c.concurrency) for c in cells}, key=lambda k: (k[0] != "hot", k[1]))
    lines = [
        "| workload | c | floor ops/s | floor p50 / p99 ms | service ops/s | service p50 / p99 ms "
        "| ratio service/floor | CPU ms/op floor (client+server) | CPU ms/op service (client+server) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    empty = Cell("", 0, "")
    for workload, conc in pairs:
        floor = by_key.get((workload, conc, "floor"), empty)
        service = by_key.get((workload, conc, "service"), empty)
        ratio = service.ops_per_s / floor.ops_per_s if floor.ops_per_s and service.ops else math.nan
        cols = [workload, str(conc)]
        for cell in (floor, service):
            ops = _fmt(cell.ops_per_s, ",.0f") if cell.ops else "—"
            cols += [ops, f"{_fmt(cell.p50_ms, '.2f')} / {_fmt(cell.p99_ms, '.2f')}"]
        cols.append(_fmt(ratio, ".2f"))
        for cell in (floor, service):
            cols.append(f"{_fmt(cell.client_cpu_ms, '.2f')} + {_fmt(cell.server_cpu_ms, '.2f')}")
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def target_verdicts(cells: list[Cell]) -> list[tuple[str, str, bool]]:
    workload, conc = TARGET_CELL
    by_key = {(c.workload, c.concurrency, c.impl): c for c in cells}
    floor = by_key.get((workload, conc, "floor"))
    service = by_key.get((workload, conc, "service"))
    if floor is None or service is None:
        return []
    ratio = service.ops_per_s / floor.ops_per_s if floor.ops_per_s else 0.0
    ops, p99 = service.ops_per_s, service.p99_ms
    return [
        (f"service ≥ {TARGET_OPS:,.0f} deductions/s", f"{ops:,.0f}", ops >= TARGET_OPS),
        (f"service/floor ≥ {TARGET_RATIO}", f"{ratio:.2f}", ratio >= TARGET_RATIO),
        (f"service p99 ≤ {TARGET_P99_MS:.0f} ms", f"{p99:.2f} ms", p99 <= TARGET_P99_MS),
    ]


# --------------------------------------------------------------------------------------------
# Correctness.
# --------------------------------------------------------------------------------------------


def check_correctness(cells: list[Cell], tag: str, org_ids: list[str], deadlocks_before: int) -> list[str]:
    """Every failure found, as a sentence; an empty list means the ledger is consistent."""
    from django.db import connection

    from billing.selectors.reconciliation import find_all_drifts

    failures = [f"drift: {drift}" for drift in find_all_drifts()]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.id, a.used_credits, COALESCE(SUM(c.credits_used), 0)
            FROM user_credit_allocations a
            LEFT JOIN credit_usage_attribution c ON c.allocation_id = a.id
            WHERE a.org_id = ANY(%s)
            GROUP BY a.id, a.used_credits
            HAVING a.used_credits <> COALESCE(SUM(c.credits_used), 0)
            """,
            [org_ids],
        )
        failures += [
            f"allocation #{pk}: used_credits {used} != sum of attribution rows {total}"
            for pk, used, total in cursor.fetchall()
        ]
        for impl in ("floor", "service"):
            committed = sum(c.committed for c in cells if c.impl == impl)
            cursor.execute(
                "SELECT count(*), COALESCE(SUM(credits_used), 0) FROM credit_usage_attribution "
                "WHERE request_id LIKE %s",
                [f"{impl}-{tag}-%"],
            )
            rows, credits = cursor.fetchone()
            if rows != committed or credits != committed * AMOUNT:
                failures.append(
                    f"{impl}: counted {committed} deductions but the ledger holds {rows} rows / {credits} mc"
                )
        time.sleep(0.6)  # let the backends flush their statistics
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        server_deadlocks = cursor.fetchone()[0] - deadlocks_before
    if server_deadlocks:
        failures.append(f"PostgreSQL reports {server_deadlocks} deadlock(s) during the run")
    for cell in cells:
        if cell.deadlocks or cell.errors:
            failures.append(
                f"{cell.workload} c={cell.concurrency} {cell.impl}: {cell.deadlocks} deadlock(s), "
                f"{cell.errors} error(s) {cell.error_samples}"
            )
        if cell.refused:
            failures.append(f"{cell.workload} c={cell.concurrency} {cell.impl}: {cell.refused} refusal(s)")
    return failures


# --------------------------------------------------------------------------------------------
# Profile: one process, the same loop, under cProfile.
# --------------------------------------------------------------------------------------------


def profile_single_process(targets: list[Target], tag: str, dsn: str, ops: int, top: int) -> None:
    """Time the floor and the service in this one process, then cProfile the service loop."""
    floor = FloorDeducer(dsn)
    service = ServiceDeducer([t.user_id for t in targets])
    rng = random.Random(7)
    picks = [targets[rng.randrange(len(targets))] for _ in range(ops)]

    def loop(deduct: Any, prefix: str) -> tuple[float, float]:
        """(wall, client CPU) in ms per deduction."""
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i, target in enumerate(picks):
            deduct(target, f"{prefix}-{i}", 500, 100)
        return (time.perf_counter() - wall0) / ops * 1000, (time.process_time() - cpu0) / ops * 1000

    loop(floor, f"profile-floor-{tag}-w")  # warm both paths (prepared statements, caches)
    loop(service, f"profile-service-{tag}-w")
    floor_wall, floor_cpu = loop(floor, f"profile-floor-{tag}-0")
    service_wall, service_cpu = loop(service, f"profile-service-{tag}-0")
    profiler = cProfile.Profile()
    profiler.enable()
    loop(service, f"profile-service-{tag}-1")
    profiler.disable()
    floor.close()

    print(f"\nProfile: {ops} deductions in this one process, spread workload, c=1, no profiler")
    print(f"  floor   {floor_wall:6.3f} ms/op wall, {floor_cpu:6.3f} ms/op client CPU")
    print(
        f"  service {service_wall:6.3f} ms/op wall, {service_cpu:6.3f} ms/op client CPU "
        f"(x{service_wall / floor_wall:.2f} the floor's wall time, x{service_cpu / floor_cpu:.2f} its CPU)"
    )
    listings = (
        ("cumulative", "project code only", re_escape(str(ROOT)) + "/(billing|organizations)/"),
        ("cumulative", "everything", None),
        ("tottime", "everything", None),
    )
    for order, scope, restriction in listings:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        if restriction is None:
            stats.strip_dirs()
        stats.sort_stats(order)
        stats.print_stats(*([restriction, top] if restriction else [top]))
        body = out.getvalue()
        begin = body.find("   ncalls")
        print(f"\n  cProfile of the service loop (with profiler overhead), {scope}, top {top} by {order}:")
        print((body[begin:] if begin >= 0 else body).rstrip().replace(str(ROOT) + "/", ""))


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per cell (1)")
    parser.add_argument("--concurrency", default="1,8,32", help="worker processes per cell (1,8,32)")
    parser.add_argument("--workloads", default="hot,spread", help="hot, spread or both (hot,spread)")
    parser.add_argument("--orgs", type=int, default=100, help="spread workload: organizations (100)")
    parser.add_argument("--users-per-org", type=int, default=10, help="spread workload: users per org (10)")
    parser.add_argument("--impls", default="floor,service", help="floor, service or both (floor,service)")
    parser.add_argument("--quick", action="store_true", help="c=1,8 and 2 s cells (0.5 s warm-up)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="also cProfile a one-process service loop")
    parser.add_argument("--profile-only", action="store_true", help="set up, profile, check; no cells")
    parser.add_argument("--profile-ops", type=int, default=2000)
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--debug", action="store_true", help="keep the settings' DEBUG (query log on)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2.0, 0.5
        if args.concurrency == "1,8,32":
            args.concurrency = "1,8"
    args.concurrency_levels = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    args.workload_names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if any(w not in ("hot", "spread") for w in args.workload_names):
        parser.error("--workloads takes hot and/or spread")
    args.impl_names = [i for i in ("floor", "service") if i in args.impls.split(",")]
    if not args.impl_names:
        parser.error("--impls takes floor and/or service")
    if args.profile_only:
        args.profile = True
        args.concurrency_levels = []
    return args


def describe_server() -> dict[str, str]:
    from django.db import connection

    settings = (
        "server_version",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_sync_method",
        "commit_delay",
        "shared_buffers",
        "max_connections",
    )
    with connection.cursor() as cursor:
        values = {}
        for name in settings:
            cursor.execute(f"SHOW {name}")
            values[name] = cursor.fetchone()[0]
    return values


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.debug:
        os.environ["DJANGO_DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgbilling.settings.dev")
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("DATABASE_URL is not set: run `make bench` or export it.", file=sys.stderr)
        return 2

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from tqdm import tqdm

    tag = secrets.token_hex(3)
    worker_count = max([*args.concurrency_levels, 8])
    began = time.monotonic()
    print(f"Starting {worker_count} worker processes...", flush=True)
    workers = Workers(worker_count, dsn)  # forked before this process connects
    try:
        workers.broadcast_and_wait(None)
        server = describe_server()
        with connection.cursor() as cursor:
            cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            deadlocks_before = cursor.fetchone()[0]
        print(
            f"orgbilling deduction benchmark  run tag {tag}  "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n"
            f"  machine: {platform.machine()} {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
            f"settings {os.environ['DJANGO_SETTINGS_MODULE']} (DEBUG={settings.DEBUG})\n"
            f"  PostgreSQL {server['server_version']}: fsync={server['fsync']} "
            f"synchronous_commit={server['synchronous_commit']} "
            f"full_page_writes={server['full_page_writes']} "
            f"wal_sync_method={server['wal_sync_method']} shared_buffers={server['shared_buffers']} "
            f"max_connections={server['max_connections']}\n"
            f"  cells: {args.warmup:g} s warm-up + {args.duration:g} s measured, "
            f"c={args.concurrency_levels}, {AMOUNT} mc per deduction"
        )

        # --- set-up, through the services ---------------------------------------------------
        hot_org = f"bench-{tag}-hot"
        hot_targets = build_org(hot_org, [f"{hot_org}-u00"], HOT_ALLOCATION)
        org_ids = spread_org_ids(tag, args.orgs)
        spread_targets: list[Target] = []
        need_spread = "spread" in args.workload_names or args.profile
        if need_spread:
            chunks = [org_ids[i :: len(workers)] for i in range(len(workers))]
            busy = [i for i, chunk in enumerate(chunks) if chunk]
            for i in busy:
                setup = {"org_ids": chunks[i], "users_per_org": args.users_per_org}
                workers.send(i, "setup", {**setup, "per_user": SPREAD_ALLOCATION})
            total_users = args.orgs * args.users_per_org
            with tqdm(total=total_users, desc="setting up users", unit="user", mininterval=1.0) as bar:
                pending = len(busy)
                while pending:
                    kind, _, payload = workers.receive(timeout=600)
                    if kind == "progress":
                        bar.update(payload)
                    elif kind == "setup_done":
                        spread_targets += [Target(**t) for t in payload]
                        pending -= 1
            spread_targets.sort(key=lambda t: (t.org_id, t.user_id))
        for name, loaded in (("hot", hot_targets), ("spread", spread_targets)):
            if name in args.workload_names:
                user_ids = [t.user_id for t in loaded]
                workers.broadcast_and_wait("prepare", {"workload": name, "user_ids": user_ids})
        print(
            f"  data: hot = 1 org / 1 user; spread = {args.orgs} orgs / {len(spread_targets)} users "
            f"(set up through the services in {time.monotonic() - began:.0f} s)\n"
        )

        # --- the cells ------------------------------------------------------------------------
        cells: list[Cell] = []
        for workload in args.workload_names:
            targets = hot_targets if workload == "hot" else spread_targets
            for conc in args.concurrency_levels:
                for impl in args.impl_names:
                    cell = run_cell(
                        workers,
                        workload=workload,
                        targets=targets,
                        concurrency=conc,
                        impl=impl,
                        tag=tag,
                        seed=args.seed,
                        warmup=args.warmup,
                        duration=args.duration,
                    )
                    cells.append(cell)
                    print(format_cell_line(cell), flush=True)
    except WorkerCrashed as exc:
        print(f"\nA benchmark worker failed: {exc}", file=sys.stderr)
        return 2
    finally:
        workers.stop()

    if cells:
        print("\n" + results_table(cells))
        verdicts = target_verdicts(cells)
        if verdicts:
            print(f"\nTarget ({TARGET_CELL[0]} workload, c={TARGET_CELL[1]}):")
            for label, value, ok in verdicts:
                print(f"  {'PASS' if ok else 'FAIL'}  {label}: {value}")

    if args.profile:
        profile_single_process(spread_targets, tag, dsn, args.profile_ops, args.profile_top)

    all_orgs = [hot_org, *(org_ids if need_spread else [])]
    failures = check_correctness(cells, tag, all_orgs, deadlocks_before)
    print("\nCorrectness:")
    if failures:
        for failure in failures:
            print(f"  FAIL  {failure}")
    else:
        committed = sum(c.committed for c in cells)
        print(
            f"  PASS  {committed:,} deductions committed in the cells (warm-up included); no drift "
            "(find_all_drifts), every allocation's used = sum of its attribution rows, "
            "rows = deductions counted per side, 0 deadlocks, 0 errors, 0 refusals"
        )
    print(f"\nTotal time {time.monotonic() - began:.0f} s")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "run_tag": tag,
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "cpus": os.cpu_count(),
                    "debug": settings.DEBUG,
                    "server": server,
                    "warmup_s": args.warmup,
                    "duration_s": args.duration,
                    "cells": [asdict(c) for c in cells],
                    "targets": [{"label": lb, "value": v, "ok": ok} for lb, v, ok in target_verdicts(cells)],
                    "correctness_failures": failures,
                },
                indent=2,
                default=str,
            )
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
