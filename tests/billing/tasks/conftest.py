"""Fixtures of the periodic-task tests: a real Redis server and a real Celery worker.

Redis comes from the project's own ``scripts/redis.sh`` (which installs Debian's redis-server
when it is missing and we are root), on a free loopback port, in a throwaway folder. The worker
is a ``celery -A orgbilling worker`` subprocess pointed at the test database, so it sees what a
``transactional_db`` test commits.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from scripts.free_port import free_port
from tests.served import run_database_url

ROOT = Path(__file__).resolve().parents[3]
REDIS_SCRIPT = ROOT / "scripts" / "redis.sh"


def at(text: str) -> datetime:
    """An aware UTC datetime from ISO text, for frozen clocks."""
    return datetime.fromisoformat(text)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    # Under /tmp itself: reachable by the `redis` user the script runs the server as (root).
    directory = tempfile.mkdtemp(prefix="orgbilling-redis-", dir="/tmp")
    started = subprocess.run(
        [str(REDIS_SCRIPT), "start", directory, str(free_port())],
        capture_output=True,
        text=True,
        timeout=900,  # a fresh machine installs redis-server first
    )
    assert started.returncode == 0, f"scripts/redis.sh start failed:\n{started.stderr}"
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(REDIS_SCRIPT), "destroy", directory], capture_output=True, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


class WorkerClient:
    """Sends tasks by name to the worker through Redis and waits for their results."""

    def __init__(self, app: Celery, process: subprocess.Popen[bytes], log: Path) -> None:
        self.app = app
        self.process = process
        self.log = log

    def run(self, task: str, timeout: float = 120, **kwargs: Any) -> Any:
        result = self.app.send_task(task, kwargs=kwargs)
        deadline = time.monotonic() + timeout
        while not result.ready():
            if self.process.poll() is not None:
                pytest.fail(f"the Celery worker exited ({self.process.returncode}):\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{task} did not finish within {timeout}s; worker log:\n{self.log.read_text()}")
            time.sleep(0.1)
        # result.get() would refuse if some test left Celery's process-wide "inside a task"
        # flag set; the result is ready, so read it directly.
        if not result.successful():
            pytest.fail(f"{task} failed: {result.traceback}\nworker log:\n{self.log.read_text()}")
        return result.result


@pytest.fixture
def celery_worker_process(transactional_db: None, redis_url: str, tmp_path: Path) -> Iterator[WorkerClient]:
    """A real worker process on the real Redis, on the test database. Depends on
    ``transactional_db`` so it stops before the test's tables are flushed."""
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orgbilling.settings.test",
        "DATABASE_URL": run_database_url(),
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "orgbilling", "worker",
                "--pool", "solo", "--loglevel", "info",
                "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    client_app = Celery("orgbilling-test-client", broker=redis_url, backend=redis_url, set_as_current=False)
    try:
        yield WorkerClient(client_app, process, log)
    finally:
        process.terminate()  # SIGTERM: warm shutdown
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        client_app.close()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., Any]:
    """Run a callable and then the on-commit callbacks it queued (e-mails), as after a commit."""

    def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return call
