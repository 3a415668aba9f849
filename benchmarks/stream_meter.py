"""CPU of the gateway's per-chunk stream metering, in-process: ``sse_events`` cutting the
upstream's bytes into events and ``StreamMeter.feed`` reading each one (parse, usage, text
size), for a stream shaped like ``benchmarks/gateway.py``'s (``--chunks`` content chunks, the
usage chunk, ``[DONE]``). No database, no sockets: what the relay's meter alone costs.

    .venv/bin/python benchmarks/stream_meter.py [--chunks 20] [--streams 2000]
"""

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgbilling.settings.dev")
os.environ.setdefault("DATABASE_URL", "postgres://unused@localhost/unused")  # never connected

import django  # noqa: E402

django.setup()

from billing.gateway.metering import StreamMeter, sse_events  # noqa: E402


def stream_events(chunks: int) -> list[bytes]:
    chunk = {
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": "token "}, "finish_reason": None}],
    }  # fmt: skip
    usage = {
        "id": "chatcmpl-bench",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": chunks},
    }
    return [
        *(f"data: {json.dumps(chunk)}\n\n".encode() for _ in range(chunks)),
        f"data: {json.dumps(usage)}\n\n".encode(),
        b"data: [DONE]\n\n",
    ]


async def metered(events: list[bytes]) -> StreamMeter:
    async def upstream() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    meter = StreamMeter(strip_usage=True)
    async for event in sse_events(upstream()):
        meter.feed(event)
    return meter


async def main(chunks: int, streams: int) -> None:
    events = stream_events(chunks)
    assert (await metered(events)).usage is not None
    started = time.process_time()
    for _ in range(streams):
        await metered(events)
    per_stream = (time.process_time() - started) / streams * 1000
    per_event = per_stream * 1000 / len(events)
    print(f"{chunks} chunks: {per_stream:.3f} ms CPU per stream, {per_event:.1f} µs per event")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--streams", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.chunks, args.streams))
