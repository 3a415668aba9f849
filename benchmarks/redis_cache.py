"""``benchmarks/gateway.py --cache redis``: the served gateway with Redis as its shared cache (plan
quotas and tier limits counted there), as in production and as ``make run`` starts it.

The benchmark starts its own ``redis-server`` through ``scripts/redis.sh`` (loopback, a generated
password, nothing on disk) in a folder under /tmp, hands the gateway database 1 of it as
``CACHE_URL``, adds the server's CPU to the per-call figures, and afterwards counts the Redis
round trips of a served call: the commands clients send it (``MONITOR``; commands a Lua script
runs are not round trips and are left out) over a few sequential calls.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIS_SCRIPT = ROOT / "scripts" / "redis.sh"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache", choices=("locmem", "redis"), default="locmem",
        help="the gateway's shared cache: in the process (default) or a Redis the benchmark starts",
    )  # fmt: skip


@dataclass(frozen=True)
class Redis:
    url: str  # database 1, the gateway's CACHE_URL
    pid: int


@contextlib.contextmanager
def started(args: argparse.Namespace, port: int) -> Iterator[Redis | None]:
    """A Redis of the benchmark's own with ``--cache redis``, else None."""
    if args.cache != "redis":
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="orgbilling-gwbench-redis-", dir="/tmp"))
    try:
        url = subprocess.check_output([str(REDIS_SCRIPT), "start", str(folder), str(port)], text=True)
        pid = int((folder / "redis.pid").read_text().strip())
        yield Redis(url=f"{url.strip().rsplit('/', 1)[0]}/1", pid=pid)
    finally:
        subprocess.run([str(REDIS_SCRIPT), "destroy", str(folder)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def round_trips(url: str, calls: int, send: Callable[[], None]) -> tuple[float, dict[str, float]]:
    """Commands sent to Redis per call over ``calls`` runs of ``send``: the total and by command."""
    import redis

    from tests.round_trips import client_commands

    client = redis.Redis.from_url(url)
    with client_commands(client) as seen:
        for _ in range(calls):
            send()
    client.close()
    by_command = Counter(seen)
    return len(seen) / calls, {name: count / calls for name, count in sorted(by_command.items())}
