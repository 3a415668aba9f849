"""Fixtures of the periodic-task tests: a real Redis server and a real Celery worker.

Redis comes from the project's own ``scripts/redis.sh`` (which installs Debian's redis-server
when it is missing and we are root), on a free loopback port, in a throwaway folder. The worker
is a ``celery -A orgbilling worker`` subprocess pointed at the test database
(``tests/celery_worker.py``), so it sees what a ``transactional_db`` test commits.
"""

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from scripts.free_port import free_port
from tests.celery_worker import WorkerClient, running_worker
from tests.redis_server import REDIS_SCRIPT, RedisServer

ROOT = Path(__file__).resolve().parents[3]

__all__ = ["REDIS_SCRIPT", "ROOT", "at", "free_port"]


def at(text: str) -> datetime:
    """An aware UTC datetime from ISO text, for frozen clocks."""
    return datetime.fromisoformat(text)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    server = RedisServer()
    server.start()
    try:
        yield server.url()
    finally:
        server.destroy()


@pytest.fixture
def celery_worker_process(transactional_db: None, redis_url: str, tmp_path: Path) -> Iterator[WorkerClient]:
    """A real worker process on the real Redis, on the test database. Depends on
    ``transactional_db`` so it stops before the test's tables are flushed."""
    with running_worker(redis_url, tmp_path / "worker.log") as worker:
        client = WorkerClient(redis_url, worker)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., Any]:
    """Run a callable and then the on-commit callbacks it queued (e-mails), as after a commit."""

    def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return call
