"""LiteLLM's proxy as a third column of ``benchmarks/gateway.py --litellm`` (issue 15 §2).

The proxy runs from its own virtualenv (``benchmarks/litellm_proxy.sh`` makes ``.venv-litellm``
from ``benchmarks/requirements-litellm.txt``), one uvicorn worker like our gateway, forwarding
``bench-model`` to the same fake upstream, and is measured in the same run with the same load.

It is started first in the configuration the comparison asks for: a **virtual key with a
budget** and LiteLLM's **Postgres spend tracking** in a database of its own (``litellm_bench``)
on the benchmark's cluster. LiteLLM reaches Postgres only through Prisma, whose engines are
downloaded at first use; where that fails the proxy is started again **without a database**
(master key: no key, no budget, no spend written), the reason is printed, and every figure is
labelled with the configuration that produced it. Without the virtualenv the column is skipped
with the reason and the benchmark carries on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "benchmarks" / "requirements-litellm.txt"
MASTER_KEY = "sk-litellm-bench-master"
DATABASE_NAME = "litellm_bench"
KEY_BUDGET = 1_000_000  # in LiteLLM's units (USD): checked on every call, never reached
STARTUP_SECONDS = 300  # with a database, LiteLLM applies its ~200 migrations at first start
COMPROMISED = {"1.107.0"}  # flagged by LiteLLM's maintainers; never installed


@dataclass
class Proxy:
    url: str
    pid: int
    key: str
    configuration: str  # what was measured; printed above the column


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--litellm", action="store_true",
        help="also measure LiteLLM's proxy (benchmarks/litellm_proxy.sh installs it) as a third column",
    )  # fmt: skip


def venv() -> Path:
    return Path(os.environ.get("LITELLM_VENV", ROOT / ".venv-litellm"))


def pinned_version(requirements: Path = REQUIREMENTS) -> str:
    """The ``litellm`` version pinned in the requirements file; refuses the compromised one."""
    match = re.search(r"^litellm(?:\[[^\]]*\])?==([^\s#]+)", requirements.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{requirements} pins no litellm version")
    if match.group(1) in COMPROMISED:
        raise ValueError(f"litellm {match.group(1)} was flagged as compromised by its maintainers")
    return match.group(1)


def proxy_config(upstream_url: str, *, model: str, input_per_million: int, output_per_million: int) -> dict:
    """LiteLLM's config.yaml (JSON is YAML): ``model`` forwarded to the fake upstream with the
    same per-token prices as the gateway's ``ModelPrice``, so its cost and budget work is real."""
    return {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": upstream_url,
                    "api_key": "sk-bench-upstream",
                    "input_cost_per_token": input_per_million / 1_000_000,
                    "output_cost_per_token": output_per_million / 1_000_000,
                },
            }
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"telemetry": False},
    }


def log_config() -> dict:
    """uvicorn logging without the access log (our gateway runs with ``--no-access-log``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {"uvicorn.access": {"level": "WARNING"}, "uvicorn.error": {"level": "WARNING"}},
    }


def database_url_for(cluster_url: str, name: str = DATABASE_NAME) -> str:
    """The URL of database ``name`` on the cluster of ``cluster_url`` (same host, port, role)."""
    parts = urlsplit(cluster_url)
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, f"/{name}", parts.query, ""))


def recreate_database(cluster_url: str, name: str = DATABASE_NAME) -> str | None:
    """A fresh, empty database ``name`` for LiteLLM on the cluster; None, or why it failed."""
    import psycopg

    try:
        with psycopg.connect(cluster_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        return f"could not create database {name}: {error}"
    return None


def drop_database(cluster_url: str, name: str = DATABASE_NAME) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error), psycopg.connect(cluster_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def installed_version(python: Path) -> str:
    return subprocess.check_output(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"], text=True
    ).strip()


class _Running:
    """One proxy process, its output in ``log``; ``stop()`` ends its process group."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as out:
            self.child = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tail(self, lines: int = 6) -> str:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace"))
        return " | ".join([line.strip() for line in plain.splitlines() if line.strip()][-lines:])

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.child.pid, signal.SIGTERM)
        try:
            self.child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.child.pid, signal.SIGKILL)
            self.child.wait()


def _wait_healthy(running: _Running, url: str, seconds: float) -> str | None:
    """None once ``/health/liveliness`` answers 200, else why not."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if running.child.poll() is not None:
            return f"the proxy exited ({running.child.returncode}): {running.tail()}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                return None
        time.sleep(0.5)
    return f"the proxy did not answer within {seconds:.0f} s: {running.tail()}"


def _virtual_key(url: str, model: str) -> tuple[str | None, str]:
    """A virtual key with ``KEY_BUDGET`` (needs LiteLLM's database): (key, or None and why)."""
    try:
        response = httpx.post(
            f"{url}/key/generate", headers={"Authorization": f"Bearer {MASTER_KEY}"},
            json={"max_budget": KEY_BUDGET, "models": [model], "key_alias": "orgbilling-bench"}, timeout=60,
        )  # fmt: skip
    except httpx.HTTPError as error:
        return None, f"POST /key/generate failed: {error!r}"
    try:
        key = response.json()["key"] if response.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        key = None
    return (
        (key, "")
        if key
        else (None, f"POST /key/generate answered {response.status_code}: {response.text[:300]}")
    )


class _Launcher:
    """Starts the proxy from ``folder``'s config on a free port, with or without a database."""

    def __init__(self, folder: Path, port: int, stack: contextlib.ExitStack) -> None:
        self.folder, self.port, self.stack = folder, port, stack
        self.url = f"http://127.0.0.1:{port}"

    def start(self, database_url: str | None) -> tuple[_Running, str | None]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
        env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")  # no fetch from the internet
        # The proxy loads the first .env above its package, which is ours when the virtualenv is in
        # the checkout (make run writes DATABASE_URL there): the configuration is what we pass.
        env["PYTHON_DOTENV_DISABLED"] = "true"
        if database_url:
            env["DATABASE_URL"] = database_url
        command = [
            str(venv() / "bin" / "litellm"), "--config", str(self.folder / "config.yaml"),
            "--host", "127.0.0.1", "--port", str(self.port), "--num_workers", "1",
            "--log_config", str(self.folder / "logging.json"),
        ]  # fmt: skip
        running = _Running(command, env, self.folder / ("proxy-db.log" if database_url else "proxy.log"))
        self.stack.callback(running.stop)
        return running, _wait_healthy(running, self.url, STARTUP_SECONDS if database_url else 120)


def _start(launcher: _Launcher, cluster_url: str, model: str, version: str) -> Proxy:
    """With a budgeted virtual key and Postgres spend tracking if LiteLLM can, else without."""
    why = recreate_database(cluster_url) or ""
    if not why:
        launcher.stack.callback(drop_database, cluster_url)  # runs after the proxy has stopped
        running, why_not = launcher.start(database_url_for(cluster_url))
        key, why = (None, why_not) if why_not else _virtual_key(launcher.url, model)
        if key:
            return Proxy(
                launcher.url, running.child.pid, key,
                f"LiteLLM {version}, virtual key with max_budget {KEY_BUDGET}, Postgres spend tracking "
                f"(database {DATABASE_NAME} on the benchmark's cluster)",
            )  # fmt: skip
        running.stop()
    print(f"litellm column: no database configuration: {why}", flush=True)
    running, why_not = launcher.start(None)
    if why_not:
        raise RuntimeError(why_not)
    return Proxy(
        launcher.url, running.child.pid, MASTER_KEY,
        f"LiteLLM {version}, NO database (master key; no virtual key, no budget, no spend tracking)",
    )  # fmt: skip


@contextlib.contextmanager
def proxy(
    args: argparse.Namespace, upstream_url: str, cluster_url: str, *, model: str, prices: tuple[int, int],
    port: int,
) -> Iterator[Proxy | None]:  # fmt: skip
    """The running proxy for ``--litellm``, or None (with the reason printed) when unavailable."""
    if not getattr(args, "litellm", False):
        yield None
        return
    python = venv() / "bin" / "python"
    if not (venv() / "bin" / "litellm").exists():
        print(f"litellm column: unavailable: no {venv()}/bin/litellm (run benchmarks/litellm_proxy.sh)")
        yield None
        return
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="orgbilling-litellm.") as tmp:
        folder = Path(tmp)
        config = proxy_config(
            upstream_url, model=model, input_per_million=prices[0], output_per_million=prices[1]
        )
        (folder / "config.yaml").write_text(json.dumps(config, indent=2))
        (folder / "logging.json").write_text(json.dumps(log_config()))
        try:
            started = _start(_Launcher(folder, port, stack), cluster_url, model, installed_version(python))
        except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
            print(f"litellm column: unavailable: {error}", flush=True)
            yield None
            return
        print(f"litellm column: {started.configuration}", flush=True)
        yield started


# -- the column ---------------------------------------------------------------------------------


def column_rows(cells: list[Any], concurrencies: list[int]) -> list[dict]:
    """Per (mode, c): LiteLLM against direct, beside our gateway against the same direct cell.
    ``cells`` are gateway.py's ``Cell`` objects; a (mode, c) without a litellm cell is left out."""

    def find(mode: str, c: int, target: str) -> Any:
        return next((x for x in cells if (x.mode, x.concurrency, x.target) == (mode, c, target)), None)

    def ttft(cell: Any, direct: Any) -> float | None:
        if cell is None or cell.ttft_p50_ms is None or direct.ttft_p50_ms is None:
            return None
        return cell.ttft_p50_ms - direct.ttft_p50_ms

    rows = []
    for mode in ("json", "stream"):
        for c in concurrencies:
            direct, litellm, gateway = (
                find(mode, c, "direct"),
                find(mode, c, "litellm"),
                find(mode, c, "gateway"),
            )
            if direct is None or litellm is None:
                continue
            rows.append({
                "mode": mode, "concurrency": c,
                "litellm_p50_ms": litellm.p50_ms,
                "added_p50_ms": litellm.p50_ms - direct.p50_ms,
                "added_p99_ms": litellm.p99_ms - direct.p99_ms,
                "added_ttft_p50_ms": ttft(litellm, direct),
                "throughput": litellm.throughput,
                "throughput_ratio": litellm.throughput / direct.throughput,
                "cpu_ms_per_call": litellm.cpu_ms_per_call.get("litellm"),
                "errors": litellm.errors,
                "gateway_added_p50_ms": gateway.p50_ms - direct.p50_ms if gateway else None,
                "gateway_added_ttft_p50_ms": ttft(gateway, direct),
                "gateway_throughput_ratio": gateway.throughput / direct.throughput if gateway else None,
            })  # fmt: skip
    return rows


def _figure(value: float | None, spec: str, unit: str = "") -> str:
    width = int(spec.split(".")[0]) + len(unit)
    return "-".rjust(width) if value is None else format(value, spec) + unit


def report(cells: list[Any], concurrencies: list[int], started: Proxy | None) -> list[dict]:
    """Prints the LiteLLM column (ratios to the same run's direct cells) and returns its rows."""
    if started is None:
        return []
    rows = column_rows(cells, concurrencies)
    print(f"\nLiteLLM proxy, same run, same upstream and load: {started.configuration}")
    print(
        f"{'mode':6} {'c':>3} {'llm p50':>8} {'added p50':>9} {'added p99':>9} {'added TTFT':>10} "
        f"{'llm/s':>7} {'ratio':>5} {'llm CPU/call':>12} {'errors':>6} | {'ours: added p50':>15} "
        f"{'TTFT':>6} {'ratio':>5}"
    )
    for r in rows:
        figures = [
            f"{r['mode']:6} {r['concurrency']:>3}",
            f"{r['litellm_p50_ms']:6.1f}ms {r['added_p50_ms']:7.1f}ms {r['added_p99_ms']:7.1f}ms",
            f"{_figure(r['added_ttft_p50_ms'], '8.1f', 'ms')}",
            f"{r['throughput']:7.1f} {r['throughput_ratio']:5.2f}",
            f"{_figure(r['cpu_ms_per_call'], '10.2f', 'ms')} {r['errors']:>6} |",
            f"{_figure(r['gateway_added_p50_ms'], '13.1f', 'ms')}",
            f"{_figure(r['gateway_added_ttft_p50_ms'], '4.1f', 'ms')}",
            _figure(r["gateway_throughput_ratio"], "5.2f"),
        ]
        print(" ".join(figures))
    return rows
