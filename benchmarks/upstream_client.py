"""Upstream client benchmark: the CPU an HTTP client spends on the gateway's upstream calls,
``httpx`` (as the gateway used it until issue 15 §2: eight ``AsyncClient`` shards, used in
turn) against ``aiohttp`` (one ``ClientSession`` per loop, as ``billing/gateway/upstream.py``
uses it now), in the same run, against the same fake upstream::

    .venv/bin/python benchmarks/upstream_client.py                   # c=1 and c=64, ~1 min
    .venv/bin/python benchmarks/upstream_client.py --concurrency 1,16,64 --chunks 60 --repeat 3

The fake upstream (``tests/fake_upstream.py``, started by ``benchmarks/gateway.py
--serve-upstream``) runs in its own process; this process is only the client, on uvloop as the
served gateway is, so its CPU time (``time.process_time``) is the client's. Per cell: ``c``
tasks in a closed loop, each sending the gateway's request (a JSON body, ``Authorization``,
``X-Request-Id``) and reading the whole answer, json or an SSE stream of ``--chunks`` chunks
(read as they arrive, as the relay does). The clients alternate cell by cell (and their order
each repeat) so the machine's noise falls on both. Printed: CPU µs per request (json), per
streamed call, per SSE event ((stream − json) / (chunks + 2)), the reads a stream took (what the
iterator yielded: coalesced chunks at c=64) and requests/s. No database, no Django.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.gateway import process  # noqa: E402 - after the path is set

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "One sentence, please."}]}
TIMEOUT = 600.0
Call = Callable[[bool], Awaitable[int]]  # stream? -> chunks read


def headers() -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Request-Id": uuid.uuid4().hex,
        "Authorization": "Bearer sk-bench-upstream",
    }


class HttpxClient:
    """The gateway's client before the switch (``upstream.py`` at 1a4f705)."""

    name = "httpx"

    def __init__(self, limit: int) -> None:
        per_client = max(1, math.ceil(limit / 8))
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        self.clients = [
            httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False) for _ in range(8)
        ]
        self.turn = 0

    def _next(self) -> httpx.AsyncClient:
        self.turn = (self.turn + 1) % len(self.clients)
        return self.clients[self.turn]

    async def call(self, url: str, body: dict, stream: bool) -> int:
        client = self._next()
        timeout = httpx.Timeout(TIMEOUT, connect=10.0)
        if not stream:
            response = await client.post(url, content=json.dumps(body), headers=headers(), timeout=timeout)
            response.json()
            return 0
        request = client.build_request(
            "POST",
            url,
            content=json.dumps(body),
            headers={**headers(), "Accept": "text/event-stream"},
            timeout=timeout,
        )
        response = await client.send(request, stream=True)
        chunks = 0
        try:
            async for _ in response.aiter_bytes():
                chunks += 1
        finally:
            await response.aclose()
        return chunks

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


class AiohttpClient:
    """The gateway's client after the switch (``billing/gateway/upstream.py``)."""

    name = "aiohttp"

    def __init__(self, limit: int) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0, keepalive_timeout=5.0),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=TIMEOUT, sock_connect=10.0, sock_read=TIMEOUT
        )

    async def call(self, url: str, body: dict, stream: bool) -> int:
        data = json.dumps(body).encode()
        if not stream:
            async with self.session.post(
                url, data=data, headers=headers(), timeout=self.timeout, allow_redirects=False
            ) as response:
                json.loads(await response.read())
            return 0
        response = await self.session.post(
            url,
            data=data,
            headers={**headers(), "Accept": "text/event-stream"},
            timeout=self.timeout,
            allow_redirects=False,
        )
        chunks = 0
        try:
            async for _ in response.content.iter_any():
                chunks += 1
        finally:
            response.release()
        return chunks

    async def close(self) -> None:
        await self.session.close()


async def cell(client: HttpxClient | AiohttpClient, url: str, *, stream: bool, c: int, rounds: int) -> dict:
    body = {**BODY, "stream": True} if stream else BODY
    await asyncio.gather(*(client.call(url, body, stream) for _ in range(c)))  # warm the connections
    chunks: list[int] = []

    async def worker() -> None:
        for _ in range(rounds):
            chunks.append(await client.call(url, body, stream))

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    calls = len(chunks)
    return {"cpu_us": cpu * 1e6 / calls, "rps": calls / wall, "chunks": statistics.mean(chunks)}


async def run(url: str, args: argparse.Namespace) -> list[dict]:
    rows = []
    events = args.chunks + 2  # the token chunks, the finish chunk and [DONE]
    for repeat in range(args.repeat):
        for c in args.concurrency:
            rounds = max(args.min_rounds, args.calls // c)
            clients = [HttpxClient(c), AiohttpClient(c)]
            if repeat % 2:
                clients.reverse()
            try:
                figures: dict[str, dict[str, dict]] = {client.name: {} for client in clients}
                for mode in ("json", "stream"):
                    for client in clients:
                        figures[client.name][mode] = await cell(
                            client, url, stream=mode == "stream", c=c, rounds=rounds
                        )
            finally:
                for client in clients:
                    await client.close()
            for name, by_mode in figures.items():
                json_, stream = by_mode["json"], by_mode["stream"]
                rows.append({
                    "client": name, "c": c, "repeat": repeat + 1,
                    "json_cpu_us": json_["cpu_us"], "stream_cpu_us": stream["cpu_us"],
                    "chunk_cpu_us": (stream["cpu_us"] - json_["cpu_us"]) / events,
                    "reads": stream["chunks"], "json_rps": json_["rps"], "stream_rps": stream["rps"],
                })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,64", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--chunks", type=int, default=20, help="streamed chunks per call (20)")
    parser.add_argument("--token-delay", type=float, default=0.002, help="seconds between chunks (0.002)")
    parser.add_argument("--latency", type=float, default=0.0, help="upstream delay before the first byte (0)")
    parser.add_argument("--calls", type=int, default=640, help="calls per cell, spread over c tasks (640)")
    parser.add_argument("--min-rounds", type=int, default=40, help="calls per task at least (40)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    upstream = [
        sys.executable, str(ROOT / "benchmarks/gateway.py"), "--serve-upstream",
        "--latency", str(args.latency), "--token-delay", str(args.token_delay),
        "--completion-tokens", str(args.chunks),
    ]  # fmt: skip
    with process(upstream, env={"PATH": "/usr/bin:/bin"}) as server:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1/chat/completions"
        rows = uvloop.run(run(url, args))
    delay, latency = args.token_delay * 1000, args.latency * 1000
    print(f"\n{args.chunks} chunks {delay:g} ms apart; upstream latency {latency:g} ms; uvloop")
    print(f"{'client':8} {'c':>3} {'run':>3} {'json µs/req':>11} {'stream µs/call':>14} {'µs/event':>8} "
          f"{'reads':>5} {'json/s':>7} {'stream/s':>8}")  # fmt: skip
    for r in rows:
        print(
            f"{r['client']:8} {r['c']:>3} {r['repeat']:>3} {r['json_cpu_us']:11.0f} "
            f"{r['stream_cpu_us']:14.0f} {r['chunk_cpu_us']:8.1f} {r['reads']:5.1f} "
            f"{r['json_rps']:7.0f} {r['stream_rps']:8.0f}"
        )


if __name__ == "__main__":
    main()
