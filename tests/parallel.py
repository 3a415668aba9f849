"""How the suite shares one machine and one PostgreSQL between its pytest-xdist workers.

``make test`` runs two workers (``-n 2 --dist load``). Each has its own test database
(pytest-django's ``test_<name>_gw<N>``), Redis, spool directory and temporary paths, so most
tests run side by side. Two kinds of test are marked (``place``) and held apart by locks over
files (``flock``) that every worker of the run shares, held around a test's whole protocol
(setup, call, teardown):

- ``processes``: the process-heavy tests (a served app under load, killed workers, a stopped
  Redis, real Celery workers, the Locust smoke run) run one at a time across the workers, as
  in a serial run, so they never starve each other of the two cores; a plain database test
  may run beside one;
- ``exclusive``: the tests that stop the run's PostgreSQL (the ``database`` fixture of
  tests/faults) run with no other test in any worker, or that test would lose its database
  mid-test. Every test holds a readers-writer lock shared; an exclusive one holds it alone. A
  gate taken first gives it priority, so a stream of shared holders cannot starve it. After
  it the other workers drop their database connections, which died with the server, before
  their next test.

xdist's own ``xdist_group``/``--dist loadgroup`` is not used: with pytest 9 its group suffix
is not applied (it sets ``item._nodeid``), and it keys work by node id, so the 78
schemathesis items sharing two node ids would silently not run. ``--dist load`` hands out
tests by index and runs them all.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

LOCK_DIR_ENV = "ORGBILLING_TEST_LOCK_DIR"
# Folders whose tests serve the app in a subprocess, kill or stop servers, or load the machine.
PROCESS_HEAVY_FOLDERS = ("tests/load/", "tests/faults/", "tests/resilience/", "tests/loadtest/test_run.py")
# Fixtures that start a real worker, Redis or uvicorn process for the test.
PROCESS_HEAVY_FIXTURES = {"celery_worker_process", "redis_server", "database"}
# Fixtures that stop the run's PostgreSQL.
EXCLUSIVE_FIXTURES = {"database"}


def place(items: list[pytest.Item], rootdir: Path) -> None:
    """Mark the process-heavy tests ``processes`` and the database-stopping ones ``exclusive``."""
    for item in items:
        try:
            path = item.path.resolve().relative_to(rootdir).as_posix()
        except ValueError:
            path = str(item.path)
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & EXCLUSIVE_FIXTURES:
            item.add_marker(pytest.mark.exclusive)
        if path.startswith(PROCESS_HEAVY_FOLDERS) or fixtures & PROCESS_HEAVY_FIXTURES:
            item.add_marker(pytest.mark.processes)


class SuiteLock:
    """The locks of one run, shared by its workers through ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._processes = os.open(directory / "processes.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._gate = os.open(directory / "gate.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._main = os.open(directory / "main.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._generation_file = directory / "database-generation"
        self._seen = self._generation()

    def _generation(self) -> int:
        try:
            return int(self._generation_file.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    @contextmanager
    def held(self, *, processes: bool, exclusive: bool) -> Iterator[None]:
        """Always taken in this order (processes, gate, main), so two workers cannot deadlock."""
        if processes:
            fcntl.flock(self._processes, fcntl.LOCK_EX)
        try:
            with self._shared_database(exclusive=exclusive):
                yield
        finally:
            if processes:
                fcntl.flock(self._processes, fcntl.LOCK_UN)

    @contextmanager
    def _shared_database(self, *, exclusive: bool) -> Iterator[None]:
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._main, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(self._gate, fcntl.LOCK_UN)
        try:
            if self._generation() != self._seen:
                self._reconnect()
            yield
        finally:
            if exclusive:
                # The database may have been restarted: the others reconnect before their next test.
                self._seen = self._generation() + 1
                self._generation_file.write_text(str(self._seen))
            fcntl.flock(self._main, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(self._gate, fcntl.LOCK_UN)

    def _reconnect(self) -> None:
        from django.db import connections

        connections.close_all()
        self._seen = self._generation()


def suite_lock() -> SuiteLock | None:
    """The run's lock in an xdist worker, None in a serial run (nothing to share)."""
    directory = os.environ.get(LOCK_DIR_ENV)
    if not directory or not os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    return SuiteLock(Path(directory))
