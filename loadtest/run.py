"""``make loadtest``: prepare the people, run Locust against a running server, watch
PostgreSQL's connections, reconcile the ledger, print the verdict; exit 1 on any failed
request, drift, or a connection peak over the budget.

    python -m loadtest.run --host http://127.0.0.1:8000 --users 200 --duration 150s

Runs with the app's virtualenv and settings (the database ``make run`` uses: ``DATABASE_URL``);
Locust itself runs from ``.venv-load`` in a subprocess.
"""

import argparse
import io
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from loadtest.monitor import ConnectionMonitor
from loadtest.report import LocustResults, Outcome, connection_budget, format_report, problems, read_results

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$|^\d+$")


class Abort(Exception):
    """The run cannot start; the message says what to do."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--host",
        default=os.environ.get("LOADTEST_HOST", "http://127.0.0.1:8000"),
        help="the running server (LOADTEST_HOST, http://127.0.0.1:8000)",
    )
    parser.add_argument("--users", type=int, default=200, help="concurrent people (200)")
    parser.add_argument("--spawn-rate", type=float, help="people started per second (default: all in 30 s)")
    parser.add_argument("--duration", default="150s", help="run time, Locust's syntax: 150s, 5m, 1h30m")
    parser.add_argument("--org-size", type=int, default=20, help="people per organization (20)")
    parser.add_argument("--think-scale", type=float, default=1.0, help="multiplies every think time (1)")
    parser.add_argument(
        "--gateway", choices=["auto", "on", "off"], default="auto", help="LLM gateway tasks (auto: probe)"
    )
    parser.add_argument("--out-dir", default=str(ROOT / ".pg" / "loadtest"), help="CSV, HTML and logs")
    parser.add_argument("--keys-file", default=str(ROOT / ".pg" / "loadtest-keys.json"))
    parser.add_argument("--locust", default=str(ROOT / ".venv-load" / "bin" / "locust"))
    parser.add_argument("--allow-non-debug", action="store_true", help="passed to prepare_loadtest")
    parser.add_argument("--every-task-first", action="store_true", help="each user runs each task once first")
    args = parser.parse_args(argv)
    if args.users < 3:
        parser.error("--users must be at least 3 (a member, an admin and a gateway service)")
    if not DURATION.match(args.duration) or args.duration == "":
        parser.error("--duration looks like 150s, 5m or 1h30m")
    if args.spawn_rate is not None and args.spawn_rate <= 0:
        parser.error("--spawn-rate must be positive")
    if args.think_scale <= 0:
        parser.error("--think-scale must be positive")
    args.host = args.host.rstrip("/")
    if args.spawn_rate is None:
        args.spawn_rate = round(max(1.0, args.users / 30), 1)
    return args


def _post_json(url: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {}


def check_server(host: str) -> None:
    try:
        with urllib.request.urlopen(f"{host}/healthz", timeout=10) as response:
            response.read()
    except (urllib.error.URLError, OSError) as error:
        raise Abort(
            f"No server answers {host}/healthz ({error}). Start it in another terminal with `make run` "
            "(or set LOADTEST_HOST)."
        ) from None


def probe_gateway(host: str, keys_file: Path, mode: str) -> str:
    """``on``, or a sentence saying why the gateway tasks are skipped."""
    if mode == "off":
        return "off (--gateway off): gateway tasks skipped"
    people = json.loads(keys_file.read_text())
    member = next(p for p in people["users"] if p["role"] == "member")
    status, body = _post_json(
        f"{host}/api/v1/llm/chat/completions",
        {"model": people["model"], "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1},
        member["key"],
    )
    if status == 200:
        return "on"
    code = (body.get("error") or {}).get("code", "")
    if status == 503 and code == "gateway_not_configured" and mode == "auto":
        return (
            "OFF: the server has no LLM upstream (LLM_UPSTREAM_BASE_URL), so the gateway tasks are SKIPPED. "
            "Start `make run` without LLM_UPSTREAM_BASE_URL (it then serves a fake upstream) or point it "
            "at one, to load the gateway too."
        )
    raise Abort(
        f"The gateway answered a probe call with {status} {code or body}: fix the server's LLM upstream "
        "(LLM_UPSTREAM_BASE_URL), or run with --gateway off."
    )


def run_locust(args: argparse.Namespace, gateway_on: bool, out_dir: Path) -> tuple[int, bool]:
    """Locust's exit code, and whether the run was interrupted (Ctrl-C)."""
    if not Path(args.locust).exists():
        raise Abort(
            f"{args.locust} not found: `make loadtest` builds .venv-load from requirements-loadtest.txt"
        )
    env = {
        **os.environ,
        "LOADTEST_KEYS_FILE": str(args.keys_file),
        "LOADTEST_RESULTS_FILE": str(out_dir / "results.json"),
        "LOADTEST_GATEWAY": "on" if gateway_on else "off",
        "LOADTEST_THINK_SCALE": str(args.think_scale),
        "LOADTEST_EVERY_TASK_FIRST": "1" if args.every_task_first else "",
    }
    command = [
        args.locust,
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        args.host,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.duration,
        "--stop-timeout",
        "10",
        "--csv",
        str(out_dir / "locust"),
        "--html",
        str(out_dir / "report.html"),
        "--only-summary",
    ]
    with (out_dir / "locust.log").open("w") as log:
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            return child.wait(), False
        except KeyboardInterrupt:  # Locust got the Ctrl-C too: let it write its statistics
            return child.wait(), True


def reconcile() -> tuple[list[str], str]:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = io.StringIO()
    try:
        call_command("reconcile_credits", no_progress=True, stdout=out, stderr=io.StringIO())
    except CommandError as error:
        drifts = [line for line in out.getvalue().splitlines() if line.startswith("DRIFT")]
        return drifts or [str(error)], f"reconcile_credits: {error}"
    return [], "reconcile_credits: " + out.getvalue().strip().splitlines()[-1]


def locust_progress(history: Path) -> str:
    """Users, current requests/s and counts from the last line of Locust's stats history."""
    try:
        with history.open() as stream:
            lines = stream.read().splitlines()
        header, last = lines[0].split(","), lines[-1].split(",")
        row = dict(zip(header, last, strict=False))
        return (
            f"{row['User Count']} users, {float(row['Requests/s']):.1f} req/s, "
            f"{int(row['Total Request Count']):,} requests ({int(row['Total Failure Count']):,} failed); "
        )
    except (OSError, IndexError, KeyError, ValueError):
        return ""


def connect_params(database: dict[str, Any]) -> dict[str, Any]:
    params = {
        "dbname": database["NAME"],
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
    }
    return {name: value for name, value in params.items() if value is not None}


def web_process_budget() -> dict[str, int]:
    """``DB_CONNECTION_BUDGET`` as a web process computes it from this environment (the same
    ``DB_POOL_MAX_SIZE``, ``WEB_CONCURRENCY``, ``CELERY_*`` and ``DB_OPERATOR_RESERVE`` as the
    server's): settings are read once per process, and this one is a command."""
    show = "import json; from django.conf import settings; print(json.dumps(settings.DB_CONNECTION_BUDGET))"
    shown = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "--verbosity", "0", "-c", show],
        env={**os.environ, "ORGBILLING_PROCESS": "web"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures: dict[str, int] = json.loads(shown.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgbilling.settings.dev")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db import OperationalError, connection

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("locust_stats.csv", "locust_stats_history.csv", "results.json"):
        (out_dir / stale).unlink(missing_ok=True)
    keys_file = Path(args.keys_file)
    database = settings.DATABASES["default"]
    history = out_dir / "locust_stats_history.csv"
    monitor = ConnectionMonitor(connect_params(database), progress=lambda: locust_progress(history))
    try:
        if not Path(args.locust).exists():
            raise Abort(f"{args.locust} not found: `make loadtest` builds it from requirements-loadtest.txt")
        check_server(args.host)
        # Two connections of our own, taken before the load and left out of its counts: the
        # monitor's, and Django's here, kept for reconcile_credits afterwards.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            monitor.exclude_pids = [int(cursor.fetchone()[0])]
        monitor.connect()
        print(f"Preparing {args.users} people (manage.py prepare_loadtest) ...", flush=True)
        call_command(
            "prepare_loadtest",
            users=str(args.users),
            org_size=str(args.org_size),
            keys_file=str(keys_file),
            allow_non_debug=args.allow_non_debug,
        )
        gateway = probe_gateway(args.host, keys_file, args.gateway)
    except (OperationalError, psycopg.OperationalError) as error:
        print(
            f"make loadtest: PostgreSQL refuses a connection ({str(error).strip()}). A server without a "
            "connection pool keeps the connections of its last load: restart `make run`.",
            file=sys.stderr,
        )
        return 2
    except (Abort, CommandError) as error:
        print(f"make loadtest: {error}", file=sys.stderr)
        return 2
    if gateway != "on":
        print(f"WARNING: gateway {gateway}", flush=True)
    budget = connection_budget(web_process_budget())
    print(
        f"Running Locust: {args.users} users, spawn {args.spawn_rate:g}/s, {args.duration}, "
        f"against {args.host} (log: {out_dir / 'locust.log'})",
        flush=True,
    )
    running: list[str] = []
    with monitor:
        exit_code, interrupted = run_locust(args, gateway == "on", out_dir)
    if exit_code not in (0, 1):  # 1: Locust saw failures, which the report counts
        running.append(f"Locust exited with {exit_code} (see {out_dir / 'locust.log'})")
    results_file = out_dir / "results.json"
    if results_file.exists():
        results = read_results(results_file)
    else:
        results = LocustResults(endpoints=[], total=None, failures=[], rate_limit_waits=0, unprepared_users=0)
        running.append(f"Locust wrote no results (see {out_dir / 'locust.log'})")
    print("Reconciling the ledger (manage.py reconcile_credits) ...", flush=True)
    drifts, ledger_message = reconcile()
    outcome = Outcome(
        host=args.host,
        users=args.users,
        spawn_rate=args.spawn_rate,
        duration=args.duration,
        gateway=gateway,
        endpoints=results.endpoints,
        total=results.total,
        failures=results.failures,
        rate_limit_waits=results.rate_limit_waits,
        unprepared_users=results.unprepared_users,
        drifts=drifts,
        ledger_message=ledger_message,
        connections=monitor.result(),
        budget=budget,
        interrupted=interrupted,
        problems_running=running,
        files=[str(out_dir / name) for name in ("report.html", "locust_stats.csv", "locust.log")],
    )
    print(format_report(outcome), flush=True)
    return 1 if problems(outcome) else 0


if __name__ == "__main__":
    sys.exit(main())
