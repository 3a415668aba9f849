"""The app served on a loopback port, two ways:

- ``served_app(tmp_path, **env)``: the way production serves it, ``uvicorn
  orgbilling.asgi:application`` in a process of its own, a web process
  (``ORGBILLING_PROCESS=web``: the connection pool, statement and lock timeouts), on the test
  database — for load and fault tests;
- ``served_in_thread()``: uvicorn in a thread of the test process, sharing its settings (which
  tests may change) — for behaviour tests of the gateway.

Either opens its own connections, so tests that use it need ``transactional_db`` (committed
data, flushed afterwards) and must stop it before the flush: both are context managers, and
fixtures built on them depend on ``transactional_db``.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from django.conf import settings

from scripts.free_port import free_port

ROOT = Path(__file__).resolve().parents[1]


def run_database_url() -> str:
    """The URL of the database the test run uses (``test_<name>`` once pytest-django set it up)."""
    db = settings.DATABASES["default"]
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def app_connections(application_name: str = "orgbilling-web") -> int:
    """Backends the served app holds now, counted by the server from a fresh connection."""
    with psycopg.connect(
        run_database_url().replace("postgres://", "postgresql://"), connect_timeout=5
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [application_name],
        ).fetchone()
    return int(row[0]) if row else 0


class ServedApp:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def served_app(log_dir: Path, *, workers: int = 1, **environment: str) -> Iterator[ServedApp]:
    """Serve the ASGI app in a subprocess until the block ends. ``environment`` overrides
    settings read from the environment (``DB_POOL_MAX_SIZE="4"``, ``LLM_UPSTREAM_BASE_URL``…)."""
    port = free_port()
    log = log_dir / f"uvicorn-{port}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orgbilling.settings.test",
        "ORGBILLING_PROCESS": "web",
        "DATABASE_URL": run_database_url(),
        "PYTHONUNBUFFERED": "1",
        **environment,
    }
    command = [
        sys.executable, "-m", "uvicorn", "orgbilling.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--lifespan", "off", "--no-access-log", "--timeout-graceful-shutdown", "10",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    app = ServedApp(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"uvicorn exited ({process.returncode}):\n{app.log_text()}")
            try:
                if httpx.get(f"{app.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"uvicorn did not answer within 60 s:\n{app.log_text()}")
            time.sleep(0.1)
        yield app
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def served_in_thread() -> Iterator[str]:
    """Yields the server's base URL (``http://127.0.0.1:<port>``); stops it afterwards."""
    import uvicorn

    from orgbilling.asgi import application

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            application, lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=30
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
