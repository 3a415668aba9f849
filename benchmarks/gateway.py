"""Gateway benchmark: the same chat completions sent straight to a fake upstream and through the
orgbilling gateway (uvicorn, ASGI), at several concurrencies, non-streaming and streaming.

One command (it starts and removes its own PostgreSQL cluster, like ``make bench``)::

    .venv/bin/python benchmarks/gateway.py                 # c=1,16,64, 200 ms upstream, ~2 min
    .venv/bin/python benchmarks/gateway.py --quick         # fewer requests per cell
    .venv/bin/python benchmarks/gateway.py --json out.json --latency 0.05 --concurrency 1,8
    .venv/bin/python benchmarks/gateway.py --cache redis   # quotas in a Redis it starts, as in production

With ``DATABASE_URL`` set it uses that database instead (it adds one org, user, key and price).

What runs, each in its own process so no two share a GIL:

* the **fake upstream** (``tests/fake_upstream.py``): a fixed ``--latency`` before the first
  byte, real ``usage``, ``--completion-tokens`` tokens streamed ``--token-delay`` apart;
* the **gateway**: ``uvicorn orgbilling.asgi:application`` (one worker, uvloop/httptools as
  installed) with the production settings (``DEBUG`` off), forwarding to the fake upstream;
* this process: the **load generator**, an ``httpx.AsyncClient`` closed loop of ``c``
  concurrent requests, first straight to the upstream (**direct**), then through the gateway
  with an API key (authenticate, resolve the payer, price, hold, forward, settle, attribute).

Per cell it reports latency p50/p99 of both and the difference (**added**), for streams the
time to the first content chunk (**TTFT**) likewise, throughput (requests/s) and the ratio
gateway/direct, and the gateway process's CPU per call. ``--targets`` prints PASS/FAIL for each
target of issue 15 §2 (one worker, 200 ms upstream): c=1 added p50 ≤ 3 ms (json) and added TTFT
p50 ≤ 3 ms (stream); c=64 ratio ≥ 0.9 (json and stream); gateway CPU ≤ 2 ms per call. Afterwards it checks the
ledger: one attribution row per successful gateway call, no hold left, ``find_all_drifts()``
empty. A missed target still exits 0; a failed check exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import litellm_column, redis_cache  # noqa: E402 - after the path is set

MODEL = "bench-model"
PRODUCTION_SETTINGS = "orgbilling.settings.production"
UPSTREAM_KEY = "sk-bench-upstream"
PROMPT = "Write one short sentence about benchmarks, please."
REDIS_TRIP_CALLS = 20  # sequential served calls over which --cache redis counts Redis round trips
BODY = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}


@dataclass
class Cell:
    mode: str  # "json" or "stream"
    concurrency: int
    target: str  # "direct" or "gateway"
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    cpu_ms_per_call: dict[str, float]  # per successful call: gateway, upstream, client (this process)

    @property
    def throughput(self) -> float:
        return (self.requests - self.errors) / self.seconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# -- processes ----------------------------------------------------------------------------------


def serve_upstream(args: argparse.Namespace) -> None:
    from tests.fake_upstream import FakeUpstream

    server = FakeUpstream()  # its handler sets TCP_NODELAY (no ~40 ms Nagle stalls)
    server.behaviour.latency = args.latency
    server.behaviour.token_delay = args.token_delay
    server.behaviour.completion_tokens = args.completion_tokens
    server.behaviour.requests = _Discard()  # type: ignore[assignment]
    server.behaviour.authorizations = _Discard()  # type: ignore[assignment]
    print(server.server_address[1], flush=True)
    server.serve_forever()


class _Discard(list):
    def append(self, item: object) -> None:  # a long run would otherwise keep every request
        return


@contextlib.contextmanager
def database() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    folder = tempfile.mkdtemp(prefix="orgbilling-gwbench.")
    port = subprocess.check_output([sys.executable, str(ROOT / "scripts/free_port.py")], text=True).strip()
    try:
        url = subprocess.check_output(
            [str(ROOT / "scripts/pg.sh"), "start", folder, port, "-c", "max_connections=200"], text=True
        ).strip()
        yield url
    finally:
        subprocess.run([str(ROOT / "scripts/pg.sh"), "destroy", folder], capture_output=True, check=False)


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield child
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children (uvicorn's workers), in seconds."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if stat.parent.name == str(pid) or fields[1] == str(pid):
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def profiled(pid: int, output: str | None) -> Iterator[None]:
    """``py-spy record`` of ``pid`` (wall clock: waiting shows too, idle threads do not) while
    the block runs; nothing without ``output``."""
    if output is None:
        yield
        return
    py_spy = os.environ.get("PY_SPY", "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", output,
               "--rate", "200", "--nonblocking"]  # fmt: skip
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()


def free_port() -> int:
    return int(subprocess.check_output([sys.executable, str(ROOT / "scripts/free_port.py")], text=True))


def served_call(gateway_url: str, key: str) -> None:
    """One json chat call through the gateway, checked."""
    response = httpx.post(
        f"{gateway_url}/api/v1/llm/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )  # fmt: skip
    response.raise_for_status()


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up")
        time.sleep(0.2)


# -- the ledger side ----------------------------------------------------------------------------


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def seed(run_tag: str, *, users: int, orgs: int) -> list[str]:
    """``users`` funded members spread over ``orgs`` organizations, an API key each, and the
    model's price; returns the raw keys."""
    from decimal import Decimal

    from billing.models import ModelPrice
    from billing.services import add_credits_to_pool, allocate_credits_to_user
    from organizations.models import User
    from organizations.services import add_member, create_api_key, create_organization

    ModelPrice.objects.update_or_create(
        model=MODEL,
        defaults={"input_credits_per_million": Decimal(15), "output_credits_per_million": Decimal(60)},
    )
    keys = []
    for o in range(orgs):
        org = create_organization(org_id=f"gwbench-{run_tag}-{o}", org_name="Gateway bench", created_by=None)
        add_credits_to_pool(org_id=org.id, amount=10**12, actor_label="bench")
    for u in range(users):
        org_id = f"gwbench-{run_tag}-{u % orgs}"
        user = User.objects.create(username=f"gwbench-{run_tag}-{u}", email=f"gwbench-{u}@example.test")
        add_member(org_id=org_id, user=user, actor_label="bench")
        allocate_credits_to_user(org_id=org_id, user=user, amount=10**12 // users, actor_label="bench")
        keys.append(create_api_key(user=user, name="gateway bench")[1])
    return keys


def ledger_breakdown(key: str, calls: int = 100) -> dict[str, float]:
    """Mean ms, CPU ms and round trips to PostgreSQL of the gateway's two database units for
    one call, run in this process with no concurrency: admission (authenticate, payer, price,
    quota, hold) and settlement."""
    from django.test import RequestFactory

    from billing.gateway.admission import admit_chat
    from billing.services.gateway_calls.holds import settle_call
    from tests.round_trips import django_round_trips

    factory = RequestFactory()
    admit = settle = cpu = 0.0
    trips = {"admit": 0, "settle": 0}
    for n in range(calls + 10):
        request = factory.post(
            "/api/v1/llm/chat/completions", data=json.dumps(BODY), content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )  # fmt: skip
        cpu_started = time.process_time()
        started = time.perf_counter()
        with django_round_trips() as admit_trips:
            admission, _, _ = admit_chat(request, byok=False)
        admitted = time.perf_counter()
        with django_round_trips() as settle_trips:
            settle_call(admission, cost=50, input_tokens=12, output_tokens=20, metadata={"breakdown": True})
        if n >= 10:  # the first ones warm up connections and caches
            admit += admitted - started
            settle += time.perf_counter() - admitted
            cpu += time.process_time() - cpu_started
            trips["admit"] += admit_trips.count
            trips["settle"] += settle_trips.count
    return {
        "admit_ms": admit * 1000 / calls,
        "settle_ms": settle * 1000 / calls,
        "cpu_ms": cpu * 1000 / calls,
        "admit_round_trips": trips["admit"] / calls,
        "settle_round_trips": trips["settle"] / calls,
        "calls": calls + 10,
    }


def check_ledger(run_tag: str, calls: int) -> list[str]:
    from billing.models import CreditReservation, CreditUsageAttribution
    from billing.selectors.reconciliation import find_all_drifts

    prefix = f"gwbench-{run_tag}-"
    problems = [str(drift) for drift in find_all_drifts()]
    rows = CreditUsageAttribution.objects.filter(org__id__startswith=prefix).count()
    if rows != calls:
        problems.append(f"{rows} attribution rows for {calls} successful gateway calls")
    held = CreditReservation.objects.filter(
        org__id__startswith=prefix, status=CreditReservation.Status.HELD
    ).count()
    if held:
        problems.append(f"{held} holds left")
    return problems


# -- load -----------------------------------------------------------------------------------------


async def one_call(client: httpx.AsyncClient, url: str, headers: dict[str, str], stream: bool):
    """(latency s, time to first content s or None, ok)."""
    body = {**BODY, "stream": True} if stream else BODY
    started = time.perf_counter()
    if not stream:
        response = await client.post(url, json=body, headers=headers)
        return time.perf_counter() - started, None, response.status_code == 200
    first = None
    async with client.stream("POST", url, json=body, headers=headers) as response:
        async for line in response.aiter_lines():
            if first is None and line.startswith("data:") and '"content"' in line:
                first = time.perf_counter() - started
    return time.perf_counter() - started, first, response.status_code == 200 and first is not None


async def run_cell(
    *, target: str, url: str, headers: list[dict[str, str]], stream: bool, concurrency: int, rounds: int,
    pids: dict[str, int],
) -> Cell:  # fmt: skip
    """``c`` clients in a closed loop, client ``i`` sending ``headers[i % len(headers)]``. Each
    client has its own one-connection ``httpx.AsyncClient``: one shared pool of 64 connections
    costs httpcore several ms of CPU per request and would make the load generator the limit."""
    clients = [
        httpx.AsyncClient(limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), timeout=60)
        for _ in range(concurrency)
    ]
    mine = [headers[i % len(headers)] for i in range(concurrency)]
    results: list[tuple[float, float | None, bool]] = []

    async def worker(client: httpx.AsyncClient, own: dict[str, str]) -> None:
        for _ in range(rounds):
            results.append(await one_call(client, url, own, stream))

    try:
        await asyncio.gather(
            *(one_call(c, url, h, stream) for c, h in zip(clients, mine, strict=True))
        )  # warm-up
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        client_before = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(c, h) for c, h in zip(clients, mine, strict=True)))
        seconds = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["client"] = time.process_time() - client_before
    finally:
        for client in clients:
            await client.aclose()
    latencies = [r[0] * 1000 for r in results if r[2]] or [0.0]
    firsts = [r[1] * 1000 for r in results if r[2] and r[1] is not None]
    return Cell(
        mode="stream" if stream else "json",
        concurrency=concurrency,
        target=target,
        requests=len(results),
        errors=sum(1 for r in results if not r[2]),
        seconds=seconds,
        p50_ms=statistics.median(latencies),
        p99_ms=percentile(latencies, 0.99),
        ttft_p50_ms=statistics.median(firsts) if firsts else None,
        ttft_p99_ms=percentile(firsts, 0.99) if firsts else None,
        cpu_ms_per_call={name: seconds * 1000 / len(results) for name, seconds in cpu.items()},
    )


def report(cells: list[Cell], args: argparse.Namespace) -> list[dict]:
    rows = []
    print(
        f"\nupstream latency {args.latency * 1000:.0f} ms, {args.completion_tokens} tokens "
        f"({args.token_delay * 1000:.0f} ms apart when streamed); {args.workers} uvicorn worker(s); "
        f"{args.users} callers in {min(args.orgs, args.users)} orgs; {os.cpu_count()} CPUs\n"
    )
    print(
        f"{'mode':6} {'c':>3} {'direct p50':>10} {'gw p50':>8} {'added p50':>9} {'added p99':>9} "
        f"{'added TTFT p50/p99':>19} {'direct/s':>9} {'gw/s':>7} {'ratio':>5} "
        f"{'gw CPU/call':>11} {'errors':>6}"
    )
    for mode in ("json", "stream"):
        for c in args.concurrency:
            direct = next(x for x in cells if (x.mode, x.concurrency, x.target) == (mode, c, "direct"))
            gw = next(x for x in cells if (x.mode, x.concurrency, x.target) == (mode, c, "gateway"))
            ttft = (
                f"{gw.ttft_p50_ms - direct.ttft_p50_ms:7.1f} / {gw.ttft_p99_ms - direct.ttft_p99_ms:6.1f} ms"
                if gw.ttft_p50_ms is not None and direct.ttft_p50_ms is not None
                and gw.ttft_p99_ms is not None and direct.ttft_p99_ms is not None
                else f"{'-':>19}"
            )  # fmt: skip
            row = {
                "mode": mode,
                "concurrency": c,
                "direct": asdict(direct),
                "gateway": asdict(gw),
                "added_p50_ms": gw.p50_ms - direct.p50_ms,
                "added_p99_ms": gw.p99_ms - direct.p99_ms,
                "throughput_ratio": gw.throughput / direct.throughput,
            }
            rows.append(row)
            gw_cpu = gw.cpu_ms_per_call.get("gateway", 0.0)
            print(
                f"{mode:6} {c:>3} {direct.p50_ms:8.1f}ms {gw.p50_ms:6.1f}ms {row['added_p50_ms']:7.1f}ms "
                f"{row['added_p99_ms']:7.1f}ms {ttft} {direct.throughput:9.1f} {gw.throughput:7.1f} "
                f"{row['throughput_ratio']:5.2f} {gw_cpu:9.2f}ms {direct.errors + gw.errors:>6}"
            )
    return rows


def target_lines(rows: list[dict]) -> list[tuple[str, str, float | None, bool | None]]:
    """Issue 15's targets (same run, one worker): (target, how it is measured, the figure, met?).
    A figure is None (and the target unjudged) when the run had no cell for it."""

    def cell(mode: str, c: int) -> dict | None:
        return next((r for r in rows if (r["mode"], r["concurrency"]) == (mode, c)), None)

    def ttft(row: dict | None) -> float | None:
        if row is None or row["gateway"]["ttft_p50_ms"] is None or row["direct"]["ttft_p50_ms"] is None:
            return None
        return row["gateway"]["ttft_p50_ms"] - row["direct"]["ttft_p50_ms"]

    json1, stream1, json64, stream64 = (
        cell("json", 1),
        cell("stream", 1),
        cell("json", 64),
        cell("stream", 64),
    )
    cpu = [r["gateway"]["cpu_ms_per_call"].get("gateway", 0.0) for r in (json64, stream64) if r]
    figures = [
        ("c=1 added p50 <= 3 ms (json)", "ms", json1["added_p50_ms"] if json1 else None, 3.0, "max"),
        ("c=1 added TTFT p50 <= 3 ms (stream)", "ms", ttft(stream1), 3.0, "max"),
        ("c=64 ratio >= 0.9 (json)", "", json64["throughput_ratio"] if json64 else None, 0.9, "min"),
        ("c=64 ratio >= 0.9 (stream)", "", stream64["throughput_ratio"] if stream64 else None, 0.9, "min"),
        ("gateway CPU <= 2 ms per call (c=64)", "ms", max(cpu) if cpu else None, 2.0, "max"),
    ]
    return [
        (name, unit, value, None if value is None else (value <= bound if kind == "max" else value >= bound))
        for name, unit, value, bound, kind in figures
    ]


def print_targets(rows: list[dict]) -> None:
    print("\ntargets (issue 15 §2, one worker, same run):")
    for name, unit, value, met in target_lines(rows):
        verdict = "n/a " if met is None else ("PASS" if met else "FAIL")
        figure = "not measured in this run" if value is None else f"{value:.2f}{(' ' + unit) if unit else ''}"
        print(f"  {verdict}  {name:38} {figure}")


async def run_all(
    args: argparse.Namespace, urls: dict[str, str], keys: list[str], pids: dict[str, int],
    litellm: litellm_column.Proxy | None = None,
) -> list[Cell]:  # fmt: skip
    targets = {
        "direct": (f"{urls['upstream']}/chat/completions", [{"Authorization": f"Bearer {UPSTREAM_KEY}"}]),
        "gateway": (
            f"{urls['gateway']}/api/v1/llm/chat/completions",
            [{"Authorization": f"Bearer {key}"} for key in keys],
        ),
    }
    if litellm is not None:  # the third column (--litellm): same upstream, same load
        targets["litellm"] = (
            f"{litellm.url}/v1/chat/completions",
            [{"Authorization": f"Bearer {litellm.key}"}],
        )
    cells = []
    for stream in (False, True):
        for concurrency, rounds in zip(args.concurrency, args.rounds, strict=True):
            for target, (url, headers) in targets.items():
                cell = await run_cell(
                    target=target, url=url, headers=headers, stream=stream, concurrency=concurrency,
                    rounds=rounds, pids=pids,
                )  # fmt: skip
                cells.append(cell)
                cpu = ", ".join(f"{name} {ms:.1f}" for name, ms in cell.cpu_ms_per_call.items())
                print(
                    f"  {cell.mode:6} c={concurrency:<3} {target:8} {cell.requests} calls in "
                    f"{cell.seconds:.1f}s, p50 {cell.p50_ms:.1f} ms, errors {cell.errors}; CPU ms/call {cpu}",
                    flush=True,
                )
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.2, help="upstream delay before the first byte (s)")
    parser.add_argument("--token-delay", type=float, default=0.002, help="delay between streamed chunks (s)")
    parser.add_argument("--completion-tokens", type=int, default=20)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--rounds", default=None, help="calls per concurrent client per cell, e.g. 50,20,15")
    parser.add_argument("--quick", action="store_true", help="fewer calls per cell")
    parser.add_argument(
        "--users", type=int, default=64, help="callers (one API key each); 1 = one hot allocation"
    )
    parser.add_argument("--orgs", type=int, default=16, help="organizations the callers are spread over")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument(
        "--breakdown-only", action="store_true",
        help="only the in-process figures of the database units (time, CPU, round trips)",
    )  # fmt: skip
    parser.add_argument(
        "--targets", action="store_true", help="print PASS/FAIL for each target of issue 15 §2"
    )
    litellm_column.add_arguments(parser)
    redis_cache.add_arguments(parser)
    parser.add_argument(
        "--profile", metavar="FILE",
        help="sample the gateway process with py-spy (on PATH or PY_SPY) during the load cells; "
        "collapsed stacks to FILE, summarised by benchmarks/profile_summary.py",
    )  # fmt: skip
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args)
        return
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    default_rounds = {1: 60, 16: 20, 64: 12} if not args.quick else {1: 20, 16: 6, 64: 4}
    args.rounds = (
        [int(r) for r in args.rounds.split(",")]
        if args.rounds
        else [default_rounds.get(c, 10) for c in args.concurrency]
    )
    run_tag = f"{int(time.time())}-{os.getpid()}"
    with database() as database_url, redis_cache.started(args, free_port()) as cache_server:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            # Production settings (DEBUG off); GATEWAY_BENCH_SETTINGS names another module.
            "DJANGO_SETTINGS_MODULE": os.environ.get("GATEWAY_BENCH_SETTINGS", PRODUCTION_SETTINGS),
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "gateway-benchmark-only"),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",
            "LOG_LEVEL": "WARNING",
            # Explicitly: a CACHE_URL in the environment or in .env (make run writes one) must not
            # turn the in-process run into one against a Redis that may not even be running.
            "CACHE_URL": cache_server.url if cache_server else "locmemcache://gateway-benchmark",
        }
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        setup_django(env)
        keys = seed(run_tag, users=args.users, orgs=min(args.orgs, args.users))
        breakdown = ledger_breakdown(keys[0])
        if args.breakdown_only:
            print(json.dumps(breakdown))
            return
        upstream_command = [
            sys.executable, __file__, "--serve-upstream", "--latency", str(args.latency),
            "--token-delay", str(args.token_delay), "--completion-tokens", str(args.completion_tokens),
        ]  # fmt: skip
        with process(upstream_command, env) as upstream:
            assert upstream.stdout is not None
            upstream_url = f"http://127.0.0.1:{upstream.stdout.readline().strip()}/v1"
            port = free_port()
            gateway_env = {**env, "LLM_UPSTREAM_BASE_URL": upstream_url, "LLM_UPSTREAM_API_KEY": UPSTREAM_KEY}
            gateway_command = [
                str(Path(sys.executable).parent / "uvicorn"), "orgbilling.asgi:application",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
                "--workers", str(args.workers),
            ]  # fmt: skip
            litellm_proxy = litellm_column.proxy(
                args, upstream_url, database_url, model=MODEL, prices=(15, 60), port=free_port()
            )  # prices: seed()'s ModelPrice
            with process(gateway_command, gateway_env) as gateway, litellm_proxy as litellm:
                gateway_url = f"http://127.0.0.1:{port}"
                wait_for(f"{gateway_url}/healthz")
                urls = {"upstream": upstream_url, "gateway": gateway_url}
                pids = {
                    "gateway": gateway.pid,
                    "upstream": upstream.pid,
                    **({"litellm": litellm.pid} if litellm else {}),
                    **({"redis": cache_server.pid} if cache_server else {}),
                }
                with profiled(gateway.pid, args.profile):
                    cells = asyncio.run(run_all(args, urls, keys, pids, litellm))
                redis_trips = (
                    redis_cache.round_trips(
                        cache_server.url, REDIS_TRIP_CALLS, lambda: served_call(gateway_url, keys[0])
                    )
                    if cache_server
                    else None
                )
        rows = report(cells, args)
        litellm_rows = litellm_column.report(cells, args.concurrency, litellm)
        if args.targets:
            print_targets(rows)
        print(
            "\nthe gateway's database work per call, in-process at c=1: "
            f"admission {breakdown['admit_ms']:.1f} ms ({breakdown['admit_round_trips']:g} round trips), "
            f"settlement {breakdown['settle_ms']:.1f} ms ({breakdown['settle_round_trips']:g} round trips), "
            f"CPU {breakdown['cpu_ms']:.2f} ms for both"
        )
        if redis_trips is not None:
            per_command = ", ".join(f"{name} {count:g}" for name, count in redis_trips[1].items())
            print(
                f"Redis round trips per served json call (c=1, MONITOR): {redis_trips[0]:g} ({per_command})"
            )
        gateway_calls = (
            int(breakdown["calls"])
            + (REDIS_TRIP_CALLS if redis_trips else 0)
            + sum(c.requests - c.errors + c.concurrency for c in cells if c.target == "gateway")
        )  # measured + warm-up calls
        problems = check_ledger(run_tag, gateway_calls)
    if args.json:
        figures = {
            "args": vars(args), "breakdown": breakdown, "cells": rows, "targets": target_lines(rows),
            "redis_round_trips": redis_trips,
        }  # fmt: skip
        figures["litellm"] = (
            {"configuration": litellm.configuration, "cells": litellm_rows} if litellm else None
        )
        Path(args.json).write_text(json.dumps(figures, indent=2))
    print("\nledger check:", "clean" if not problems else "; ".join(problems))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
