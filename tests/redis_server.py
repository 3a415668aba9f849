"""A real ``redis-server`` a test owns and may stop, freeze and start again, started through the
project's own ``scripts/redis.sh`` (loopback, a generated password, no persistence).

It keeps its folder, port and password across a stop and a start, so clients configured with
its URL reconnect to "the same" Redis, empty (it keeps nothing on disk), as after a real outage.
"""

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.free_port import free_port

ROOT = Path(__file__).resolve().parents[1]
REDIS_SCRIPT = ROOT / "scripts" / "redis.sh"


class RedisServer:
    def __init__(self) -> None:
        # Under /tmp itself: reachable by the `redis` user the script runs the server as (root).
        self.directory = Path(tempfile.mkdtemp(prefix="orgbilling-redis-", dir="/tmp"))
        self.port = free_port()
        self._url = ""

    def url(self, db: int = 0) -> str:
        """``redis://:<password>@127.0.0.1:<port>/<db>`` (valid while stopped too)."""
        assert self._url, "start() the server first"
        return f"{self._url.rsplit('/', 1)[0]}/{db}"

    def start(self) -> None:
        started = subprocess.run(
            [str(REDIS_SCRIPT), "start", str(self.directory), str(self.port)],
            capture_output=True,
            text=True,
            timeout=900,  # a fresh machine installs redis-server first
        )
        assert started.returncode == 0, f"scripts/redis.sh start failed:\n{started.stderr}"
        self._url = started.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        """Shut the server down (its data is gone: nothing is persisted)."""
        self.thaw()
        stopped = subprocess.run(
            [str(REDIS_SCRIPT), "stop", str(self.directory)], capture_output=True, text=True, timeout=60
        )
        assert stopped.returncode == 0, stopped.stderr

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers (a hung server)."""
        os.kill(self._pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        pid = self._pid()
        if pid:
            os.kill(pid, signal.SIGCONT)

    def _pid(self) -> int:
        pid_file = self.directory / "redis.pid"
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return 0
        return pid

    def destroy(self) -> None:
        self.thaw()
        subprocess.run([str(REDIS_SCRIPT), "destroy", str(self.directory)], capture_output=True, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real Redis, started; the test may stop, freeze and start it again."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.destroy()
