"""Real Celery workers for tests: ``celery -A orgbilling worker`` subprocesses on a real Redis and
the test database, run as production runs them (``ORGBILLING_PROCESS=worker``), and a client
that sends tasks to them by name.

The worker opens its own database connections, so tests need ``transactional_db`` (it sees only
committed rows) and must stop it before the tables are flushed. The test process itself runs
tasks eagerly: only a worker can have run what the client sends.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.result import AsyncResult

from tests.served import run_database_url

ROOT = Path(__file__).resolve().parents[1]


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and its pool children (the whole process group): nothing is
        acknowledged, nothing is cleaned up, as when a machine or container dies."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM: a warm shutdown; SIGKILL after 30 s."""
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def start_worker(broker_url: str, log: Path, *, pool: str = "solo", **environment: str) -> Worker:
    """Start a worker on ``broker_url`` (also its result backend). ``environment`` overrides
    settings (``CELERY_VISIBILITY_TIMEOUT_SECONDS="4"``…)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orgbilling.settings.test",
        "ORGBILLING_PROCESS": "worker",
        "CELERY_TASK_ALWAYS_EAGER": "false",  # its retries go through the broker, as deployed
        "DATABASE_URL": run_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": broker_url,
        "PYTHONUNBUFFERED": "1",
        **environment,
    }
    command = [
        sys.executable, "-m", "celery", "-A", "orgbilling", "worker",
        "--pool", pool, "--concurrency", "1", "--loglevel", "info",
        "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Worker(process, log)


@contextmanager
def running_worker(broker_url: str, log: Path, **options: Any) -> Iterator[Worker]:
    worker = start_worker(broker_url, log, **options)
    try:
        yield worker
    finally:
        worker.stop()


class WorkerClient:
    """Sends tasks by name through Redis and waits for their results."""

    def __init__(self, broker_url: str, worker: Worker | None = None) -> None:
        self.app = Celery(
            "orgbilling-test-client", broker=broker_url, backend=broker_url, set_as_current=False
        )
        self.worker = worker

    def send(self, task: str, **kwargs: Any) -> AsyncResult:
        return self.app.send_task(task, kwargs=kwargs)

    def wait(self, result: AsyncResult, timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while not result.ready():
            if self.worker is not None and not self.worker.alive():
                pytest.fail(f"the Celery worker exited ({self.worker.process.returncode}):\n{self._log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{result.task_id} did not finish within {timeout}s; worker log:\n{self._log()}")
            time.sleep(0.1)
        # result.get() would refuse if some test left Celery's process-wide "inside a task"
        # flag set; the result is ready, so read it directly.
        if not result.successful():
            pytest.fail(f"{result.task_id} failed: {result.traceback}\nworker log:\n{self._log()}")
        return result.result

    def run(self, task: str, timeout: float = 120, **kwargs: Any) -> Any:
        return self.wait(self.send(task, **kwargs), timeout=timeout)

    def _log(self) -> str:
        return self.worker.log_text() if self.worker is not None else "(no worker attached)"

    def close(self) -> None:
        self.app.close()
