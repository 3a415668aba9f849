"""PostgreSQL connections during a load test, sampled from one separate connection.

``pg_stat_activity`` is read every ``interval`` seconds in autocommit (a transaction would see
one frozen snapshot of it); the monitor's own backend, and those named in ``exclude_pids`` (the
load test's own), are left out of every count.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psycopg

SESSIONS_SQL = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
SAMPLE_SQL = """
SELECT count(*) FILTER (WHERE datname = current_database()),
       count(*) FILTER (WHERE datname = current_database() AND state = 'active'),
       count(*) FILTER (WHERE backend_type = 'client backend')
  FROM pg_stat_activity
 WHERE pid <> pg_backend_pid() AND pid <> ALL(%(exclude)s)
"""


@dataclass(frozen=True)
class ConnectionPeak:
    database: str
    max_connections: int
    superuser_reserved: int
    samples: int
    peak: int  # connections to the database
    peak_at: float  # seconds after the monitor started
    peak_active: int  # of those, running a statement, at their own peak
    peak_server: int  # client connections to every database of the server
    mean: float
    failed_samples: int
    sessions_opened: int | None = None  # new connections to the database while it watched


class ConnectionMonitor:
    """``with ConnectionMonitor(params) as monitor: ...`` then ``monitor.result()``."""

    def __init__(
        self,
        connect_params: dict[str, Any],
        *,
        interval: float = 0.5,
        heartbeat: float = 15.0,
        say: Callable[[str], None] = lambda text: print(text, flush=True),
        progress: Callable[[], str] = lambda: "",
        exclude_pids: tuple[int, ...] = (),
    ) -> None:
        self.connect_params = connect_params
        self.interval = interval
        self.heartbeat = heartbeat
        self.say = say
        self.progress = progress
        self.exclude_pids = list(exclude_pids)
        self._conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts: list[tuple[float, int, int, int]] = []
        self._failed = 0
        self._settings: tuple[str, int, int] = ("", 0, 0)
        self._sessions: list[int] = []

    def connect(self) -> None:
        """Take the monitor's connection: before the load, or a full server would refuse it."""
        if self._conn is not None:
            return
        self._conn = psycopg.connect(
            **self.connect_params, autocommit=True, application_name="loadtest-monitor"
        )
        row = self._conn.execute(
            "SELECT current_database(), current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int"
        ).fetchone()
        assert row is not None
        self._settings = (str(row[0]), int(row[1]), int(row[2]))

    def _read_sessions(self) -> None:
        """PostgreSQL's count of sessions ever opened to the database (statistics are flushed
        within about a second, so the last second of a run may be missing)."""
        assert self._conn is not None
        try:
            row = self._conn.execute(SESSIONS_SQL).fetchone()
            if row is not None:
                self._sessions.append(int(row[0]))
        except psycopg.Error:
            pass

    def __enter__(self) -> "ConnectionMonitor":
        self.connect()
        self._read_sessions()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._poll, name="loadtest-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._conn is not None:
            self._read_sessions()
            self._conn.close()

    def _poll(self) -> None:
        next_heartbeat = self.heartbeat
        while not self._stop.is_set():
            elapsed = time.monotonic() - self._started
            try:
                assert self._conn is not None
                row = self._conn.execute(SAMPLE_SQL, {"exclude": self.exclude_pids}).fetchone()
                assert row is not None
                self._counts.append((elapsed, int(row[0]), int(row[1]), int(row[2])))
            except psycopg.Error:
                self._failed += 1
            if self.heartbeat and elapsed >= next_heartbeat and self._counts:
                _, now, active, _ = self._counts[-1]
                peak = max(count for _, count, _, _ in self._counts)
                self.say(
                    f"  [{elapsed:4.0f}s] {self.progress()}PostgreSQL: {now} connections ({active} active), "
                    f"peak {peak}, max_connections {self._settings[1]}"
                )
                next_heartbeat += self.heartbeat
            self._stop.wait(self.interval)

    def latest(self) -> int | None:
        """The connection count of the latest sample (None before the first)."""
        return self._counts[-1][1] if self._counts else None

    def result(self) -> ConnectionPeak:
        database, max_connections, reserved = self._settings
        counts = self._counts or [(0.0, 0, 0, 0)]
        at, peak, _, _ = max(counts, key=lambda sample: sample[1])
        return ConnectionPeak(
            database=database,
            max_connections=max_connections,
            superuser_reserved=reserved,
            samples=len(self._counts),
            peak=peak,
            peak_at=at,
            peak_active=max(sample[2] for sample in counts),
            peak_server=max(sample[3] for sample in counts),
            mean=sum(sample[1] for sample in counts) / len(counts),
            failed_samples=self._failed,
            sessions_opened=self._sessions[-1] - self._sessions[0] if len(self._sessions) == 2 else None,
        )
