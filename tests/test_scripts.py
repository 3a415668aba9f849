"""The setup scripts fail loudly: a service that does not start is a non-zero exit and no URL,
and throwaway servers get ports a client socket can never hold."""

import socket
import subprocess
from pathlib import Path

from scripts.free_port import _ephemeral_range, free_port

ROOT = Path(__file__).resolve().parent.parent


def test_free_ports_lie_below_the_ephemeral_range():
    low, high = _ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(port < 32768 and not low <= port <= high for port in ports), ports


def test_pg_start_on_a_taken_port_exits_non_zero_and_prints_no_url(tmp_path: Path):
    # given: the port is held by another listener
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port()))
        holder.listen()
        port = holder.getsockname()[1]
        # when
        directory = tmp_path / "cluster"
        result = subprocess.run(
            [str(ROOT / "scripts" / "pg.sh"), "start", str(directory), str(port)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    subprocess.run(
        [str(ROOT / "scripts" / "pg.sh"), "destroy", str(directory)], capture_output=True, timeout=60
    )
    # then
    assert result.returncode != 0
    assert "postgres://" not in result.stdout
    assert "Address already in use" in result.stderr or "could not" in result.stderr, result.stderr
