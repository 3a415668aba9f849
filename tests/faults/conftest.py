"""Fault tests against the served app (``tests/served.py``): the real uvicorn process, the real
PostgreSQL of the test run (stopped and started again), the fake upstream misbehaving.

``make test`` exports ``ORGBILLING_TEST_PG_DIR``, the data directory of its throwaway cluster;
``scripts/pg.sh stop`` / ``resume`` stop it and start it again with the same options.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db import connection

from tests.served import ROOT

PG_SCRIPT = ROOT / "scripts" / "pg.sh"
# What a database refusal may be called (orgbilling.db.database_refusal).
DATABASE_REFUSALS = {"database_busy", "database_timeout", "service_unavailable"}


class Database:
    """The test run's PostgreSQL, which a test may stop and start again."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.running = True

    def _pg(self, command: str) -> None:
        subprocess.run(["bash", str(PG_SCRIPT), command, self.data_dir], check=True, timeout=90)

    def stop(self) -> None:
        self._pg("stop")
        self.running = False

    def start(self) -> None:
        self._pg("resume")
        self.running = True


@pytest.fixture
def database(transactional_db) -> Iterator[Database]:
    data_dir = os.environ.get("ORGBILLING_TEST_PG_DIR")
    if not data_dir:
        pytest.skip("needs the throwaway cluster of `make test` (ORGBILLING_TEST_PG_DIR)")
    db = Database(data_dir)
    try:
        yield db
    finally:
        if not db.running:  # a failed test must not leave the rest of the suite without a database
            db.start()
        connection.close()  # this thread's connection died with the server: the next query reconnects


def assert_error_shape(response: httpx.Response, status: int, codes: set[str]) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] in codes, body
    return dict(body["error"])


def wait_until(condition: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)
