"""A fake OpenAI-compatible upstream: a real HTTP server on loopback for tests and benchmarks.

It answers ``POST /v1/chat/completions`` (JSON, or SSE when ``stream`` is true, with a final
usage chunk when ``stream_options.include_usage`` is set), ``POST /v1/images/generations`` and
``GET /v1/models``. Token counts are deterministic: a prompt token per whitespace-separated word
of the messages, and ``completion_tokens`` words of output (capped by ``max_tokens``).

Behaviour is steered per server (``server.behaviour``) or per request with the
``X-Fake-Behaviour`` header: ``ok``, ``error`` (500), ``hang`` (never answers within the
client's timeout), ``drop`` (closes the connection mid-stream, or halfway through a JSON body),
``stall`` (streams half the tokens, then sends nothing more within the client's timeout),
``malformed`` (200 with a body that is not JSON), ``bad_sse`` (streams ``completion_tokens``
good chunks, then events that are not JSON, no usage chunk and no ``[DONE]``). ``latency`` adds
a delay before the first byte; ``token_delay`` spaces streamed chunks; ``think_seconds`` is a
silence after a stream's headers, before its first chunk (a reasoning model thinking).
``text`` is what each streamed chunk says. A reasoning model: ``reasoning_tokens`` hidden tokens
are added to ``completion_tokens`` and reported as ``completion_tokens_details.reasoning_tokens``;
with ``chunk_usage`` every streamed chunk carries the usage so far (as vLLM's
``continuous_usage_stats`` does), reasoning tokens included. Usage details, counted inside
the totals as OpenAI and LiteLLM count them: ``prefix_tokens`` more prompt tokens (a long
system prompt), of which ``cached_tokens`` are reported as cache reads
(``prompt_tokens_details.cached_tokens``) and ``cache_write_tokens`` as cache writes
(``cache_creation_input_tokens``, LiteLLM's Anthropic field); ``audio_input_tokens`` and
``audio_output_tokens`` are added to the prompt and the completion and reported in their
``…_tokens_details.audio_tokens``. The JSON answer and the stream's usage chunk carry the same
usage.

Standalone (``make run`` starts it when ``LLM_UPSTREAM_BASE_URL`` is unset; dev only)::

    python -m tests.fake_upstream --port 28100 [--latency 0.1] [--token-delay 0.01] \
        [--prefix-tokens 1000 --cached-tokens 800 --reasoning-tokens 50 ...]
"""

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    mode: str = "ok"
    latency: float = 0.0
    token_delay: float = 0.0
    completion_tokens: int = 20
    hang_seconds: float = 30.0
    text: str = "tok "
    reasoning_tokens: int = 0
    think_seconds: float = 0.0
    chunk_usage: bool = False
    prefix_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    # Tests inspect what was sent; a long-running standalone server must not keep every request.
    record: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)


def prompt_tokens(body: dict[str, Any]) -> int:
    words = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else ""
        if isinstance(content, str):
            words += len(content.split())
    return max(1, words)


def _usage(behaviour: Behaviour, words: int, completion: int) -> dict[str, Any]:
    prompt = words + behaviour.prefix_tokens + behaviour.audio_input_tokens
    output = completion + behaviour.reasoning_tokens + behaviour.audio_output_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
    }
    if behaviour.reasoning_tokens or behaviour.audio_output_tokens:
        usage["completion_tokens_details"] = {
            "reasoning_tokens": behaviour.reasoning_tokens,
            "audio_tokens": behaviour.audio_output_tokens,
        }
    if behaviour.cached_tokens or behaviour.audio_input_tokens:
        usage["prompt_tokens_details"] = {
            "cached_tokens": behaviour.cached_tokens,
            "audio_tokens": behaviour.audio_input_tokens,
        }
    if behaviour.cache_write_tokens:
        usage["cache_creation_input_tokens"] = behaviour.cache_write_tokens
    return usage


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Small writes (SSE chunks) would otherwise wait ~40 ms for Nagle + delayed ACK.
    disable_nagle_algorithm = True
    server: "FakeUpstream"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/v1/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        behaviour = self.server.behaviour
        body = self._read_body()
        if behaviour.record:
            behaviour.requests.append(body)
            behaviour.authorizations.append(self.headers.get("Authorization", ""))
        mode = self.headers.get("X-Fake-Behaviour") or behaviour.mode
        if behaviour.latency:
            time.sleep(behaviour.latency)
        if mode == "error":
            self._json(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
            return
        if mode == "hang":
            time.sleep(behaviour.hang_seconds)
            return
        if self.path.rstrip("/").endswith("/images/generations"):
            count = int(body.get("n") or 1)
            self._json(
                200,
                {
                    "created": int(time.time()),
                    "data": [{"url": f"https://images.test/{i}.png"} for i in range(count)],
                },
            )
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found"}})
            return
        completion = behaviour.completion_tokens
        if body.get("max_tokens") is not None:
            completion = min(completion, int(body["max_tokens"]))
        usage = _usage(behaviour, prompt_tokens(body), completion)
        if body.get("stream"):
            if mode == "bad_sse":
                self._bad_stream(body, usage)
            else:
                self._stream(body, usage, drop=(mode == "drop"), stall=(mode == "stall"))
        elif mode == "malformed":
            self._raw(200, b'{"id": "chatcmpl-broken", "choices": [{"message": {"content": "tok tok')
        elif mode == "drop":
            # Announces a whole body, sends half of it and resets the connection.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "400")
            self.end_headers()
            self.wfile.write(b'{"id": "chatcmpl-cut", "choices": [')
            self.wfile.flush()
            self.close_connection = True
            self.connection.close()
        else:
            self._json(
                200,
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake-model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": " ".join(["tok"] * completion)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )

    def _raw(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, payload: str) -> None:
        data = payload.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _start_stream(self, body: dict[str, Any]) -> dict[str, Any]:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
        }

    def _token(self, base: dict[str, Any], n: int, usage: dict[str, Any] | None = None) -> None:
        text = self.server.behaviour.text
        delta = {"role": "assistant", "content": text} if n == 0 else {"content": text}
        event = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        if usage is not None and self.server.behaviour.chunk_usage:
            # The usage so far: the reasoning was done before the first visible token.
            reasoning = usage.get("completion_tokens_details", {}).get("reasoning_tokens", 0)
            event["usage"] = {**usage, "completion_tokens": reasoning + n + 1}
        self._chunk(f"data: {json.dumps(event)}\n\n")

    def _bad_stream(self, body: dict[str, Any], usage: dict[str, Any]) -> None:
        base = self._start_stream(body)
        for n in range(usage["completion_tokens"]):
            self._token(base, n)
        self._chunk('data: {"choices": [{"delta": {"content": "tok\n\n')  # cut JSON
        self._chunk("data: <html>502 Bad Gateway</html>\n\n")
        self._chunk("event: ping\ndata: \n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _stream(self, body: dict[str, Any], usage: dict[str, Any], *, drop: bool, stall: bool) -> None:
        behaviour = self.server.behaviour
        base = self._start_stream(body)
        if behaviour.think_seconds:
            time.sleep(behaviour.think_seconds)
        visible = usage["completion_tokens"] - behaviour.reasoning_tokens - behaviour.audio_output_tokens
        for n in range(visible):
            self._token(base, n, usage)
            if (drop or stall) and n == visible // 2:
                if stall:
                    time.sleep(behaviour.hang_seconds)
                self.close_connection = True
                self.connection.close()
                return
            if behaviour.token_delay:
                time.sleep(behaviour.token_delay)
        final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self._chunk(f"data: {json.dumps(final)}\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            self._chunk(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n")
        self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeUpstream(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.behaviour = Behaviour()

    def handle_error(self, request, client_address) -> None:
        """A client that left mid-answer (the gateway cut a stream, a test ended) is expected of
        an upstream; a traceback for it would be printed outside any test's captured output."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def running_upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    # A short poll: shutdown() waits for it, by default up to 0.5 s, and most gateway tests
    # start an upstream of their own.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_upstream",
        description="A fake OpenAI-compatible upstream on 127.0.0.1, for dev and load tests.",
    )
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds before the first byte (0.1)")
    parser.add_argument("--token-delay", type=float, default=0.01, help="seconds between streamed chunks")
    parser.add_argument("--completion-tokens", type=int, default=20, help="output tokens per answer (20)")
    for detail in ("prefix", "cached", "cache-write", "reasoning", "audio-input", "audio-output"):
        parser.add_argument(f"--{detail}-tokens", type=int, default=0, help="usage detail per answer (0)")
    parser.add_argument("--ready-file", help="written (with the base URL) once the port is bound")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535 or args.latency < 0 or args.token_delay < 0 or args.completion_tokens < 1:
        parser.error("the port must be 0-65535, delays >= 0 and completion tokens >= 1")
    try:
        server = FakeUpstream(port=args.port)
    except OSError as err:
        print(f"fake upstream: cannot listen on 127.0.0.1:{args.port}: {err}", file=sys.stderr)
        return 1
    server.behaviour.record = False
    server.behaviour.latency = args.latency
    server.behaviour.token_delay = args.token_delay
    server.behaviour.completion_tokens = args.completion_tokens
    for detail in ("prefix", "cached", "cache_write", "reasoning", "audio_input", "audio_output"):
        setattr(server.behaviour, f"{detail}_tokens", max(0, getattr(args, f"{detail}_tokens")))
    if args.ready_file:
        with open(args.ready_file, "w") as ready:
            ready.write(server.base_url + "\n")
    print(f"Fake OpenAI-compatible upstream on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
