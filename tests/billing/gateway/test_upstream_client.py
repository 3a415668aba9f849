"""The gateway's HTTP client to the upstream (``billing/gateway/upstream.py``) against upstreams
that answer the way real servers do and fail the way real networks do: scripted at the socket
(``ScriptedUpstream``), so a test says exactly which bytes go out and when the connection
ends. Through the served gateway: the caller's answer, the hold, the charge and
``details.reason``; on a bare event loop: the shared session's connection limit and its closing
when the loop ends."""

import asyncio
import gc
import gzip
import json
import socket
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from billing.gateway import upstream
from billing.models import CreditReservation, CreditUsageAttribution
from billing.selectors.reconciliation import find_all_drifts
from tests.billing.gateway.conftest import MODEL, api_key

pytestmark = pytest.mark.usefixtures("model_price")

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 50}
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
COMPLETION = {
    "id": "chatcmpl-scripted",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "one two three"}}],
    "usage": USAGE,
}


class Conn:
    """One accepted connection of a ``ScriptedUpstream``, as its script sees it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def request(self) -> tuple[bytes, dict[str, str], bytes] | None:
        """The next request on this connection (head line, headers, body); None at EOF."""
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        line, *fields = head.split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (f.decode().split(":", 1) for f in fields)}
        length = int(headers.get("content-length", 0))
        while len(self.buffer) < length:
            self.buffer += self.sock.recv(65536)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return line, headers, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reset(self) -> None:
        """Close with a TCP reset (RST), not a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class ScriptedUpstream:
    """A loopback HTTP server whose every connection runs ``script(conn)`` in a thread of its
    own; it records each request (head line and headers) and the most connections open at once."""

    def __init__(self, script: Callable[[Conn, "ScriptedUpstream"], None]) -> None:
        self.script = script
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        try:
            self.script(Conn(sock), self)
        except OSError:
            pass  # the gateway went away: part of some scripts
        finally:
            with self._lock:
                self.open -= 1
            sock.close()

    def record(self, request: tuple[bytes, dict[str, str], bytes]) -> None:
        with self._lock:
            self.requests.append(request[:2])

    def close(self) -> None:
        self._listener.close()


def answer(conn: Conn, body: bytes, *headers: str, status: str = "200 OK") -> None:
    head = "".join(f"{h}\r\n" for h in (f"HTTP/1.1 {status}", *headers))
    conn.send(head.encode() + b"\r\n" + body)


def json_answer(conn: Conn, payload: dict[str, Any] = COMPLETION, *headers: str) -> None:
    data = json.dumps(payload).encode()
    answer(conn, data, "Content-Type: application/json", f"Content-Length: {len(data)}", *headers)


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def sse(*events: dict[str, Any]) -> list[bytes]:
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


STREAM = sse(
    *({"choices": [{"index": 0, "delta": {"content": "tok "}}]} for _ in range(4)),
    {"choices": [], "usage": USAGE},
)


def serve_each(respond: Callable[[Conn], None]) -> Callable[[Conn, ScriptedUpstream], None]:
    """A script answering every request of a connection with ``respond`` (keep-alive)."""

    def script(conn: Conn, server: ScriptedUpstream) -> None:
        while (request := conn.request()) is not None:
            server.record(request)
            respond(conn)

    return script


@pytest.fixture
def scripted(settings) -> Iterator[Callable[..., ScriptedUpstream]]:
    servers: list[ScriptedUpstream] = []

    def start(script: Callable[[Conn, ScriptedUpstream], None]) -> ScriptedUpstream:
        server = ScriptedUpstream(script)
        servers.append(server)
        settings.LLM_UPSTREAM_BASE_URL = server.base_url
        settings.LLM_UPSTREAM_API_KEY = "sk-upstream-secret"
        settings.LLM_UPSTREAM_TIMEOUT_SECONDS = 1.0
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def call(gateway_server, transactional_db, make_funded_member) -> Callable[..., httpx.Response]:
    _, user, _ = make_funded_member()
    key = api_key(user)

    def send(**extra: Any) -> httpx.Response:
        return httpx.post(
            f"{gateway_server.llm_url}/chat/completions",
            json={**BODY, **extra},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
            trust_env=False,  # this client goes straight to the gateway, whatever the environment
        )

    return send


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    return dict(response.json()["error"])


def stream_error(response: httpx.Response) -> dict[str, Any]:
    """The error event a stream that broke off ends with."""
    assert response.status_code == 200
    payloads = [json.loads(line[6:]) for line in response.text.split("\n") if line.startswith("data: {")]
    assert "error" in payloads[-1], payloads[-1]
    return dict(payloads[-1]["error"])


def assert_released() -> None:
    assert CreditUsageAttribution.objects.count() == 0
    assert set(CreditReservation.objects.values_list("status", flat=True)) == {"released"}
    assert find_all_drifts() == []


def charged_row(timeout: float = 10) -> CreditUsageAttribution:
    """The call's attribution row, waited for: a settlement the database refused (a pooled
    connection that died with an earlier test's database restart) is charged by the retry."""
    deadline = time.monotonic() + timeout
    while (row := CreditUsageAttribution.objects.first()) is None:
        assert time.monotonic() < deadline, "the call was not charged"
        time.sleep(0.1)
    return row


def assert_charged(**tokens: int) -> None:
    row = charged_row()
    assert {name: getattr(row, name) for name in tokens} == tokens
    assert CreditUsageAttribution.objects.count() == 1
    assert set(CreditReservation.objects.values_list("status", flat=True)) == {"settled"}
    assert find_all_drifts() == []


# -- answers a real server may send -----------------------------------------------------------


def _chunked_json(conn: Conn) -> None:
    data = json.dumps(COMPLETION).encode()
    answer(
        conn, chunked(data[:30], data[30:]), "Content-Type: application/json", "Transfer-Encoding: chunked"
    )


def _json_until_close(conn: Conn) -> None:
    answer(conn, json.dumps(COMPLETION).encode(), "Content-Type: application/json", "Connection: close")
    conn.sock.close()


def _gzipped_json(conn: Conn) -> None:
    packed = gzip.compress(json.dumps(COMPLETION).encode())
    answer(
        conn,
        packed,
        "Content-Type: application/json",
        "Content-Encoding: gzip",
        f"Content-Length: {len(packed)}",
    )


@pytest.mark.parametrize(
    "respond",
    [json_answer, _chunked_json, _json_until_close, _gzipped_json],
    ids=["content-length", "chunked", "until-close", "gzip"],
)
def test_a_json_answer_is_read_however_its_body_is_framed(scripted, call, respond):
    scripted(serve_each(respond))

    response = call()

    assert response.status_code == 200, response.text[:300]
    assert response.json() == COMPLETION
    assert_charged(input_tokens=7, output_tokens=3)


@pytest.mark.parametrize("framing", ["chunked", "content-length", "gzip"])
def test_a_stream_is_relayed_however_its_body_is_framed(scripted, call, framing):
    body = b"".join(STREAM)

    def respond(conn: Conn) -> None:
        if framing == "chunked":
            answer(conn, chunked(*STREAM), "Content-Type: text/event-stream", "Transfer-Encoding: chunked")
        elif framing == "content-length":
            answer(conn, body, "Content-Type: text/event-stream", f"Content-Length: {len(body)}")
        else:
            packed = gzip.compress(body)
            answer(conn, packed, "Content-Type: text/event-stream", "Content-Encoding: gzip",
                   f"Content-Length: {len(packed)}")  # fmt: skip

    scripted(serve_each(respond))

    response = call(stream=True, stream_options={"include_usage": True})

    assert response.status_code == 200
    assert response.text.count('"content": "tok "') == 4
    assert response.text.endswith("data: [DONE]\n\n")
    assert_charged(input_tokens=7, output_tokens=3)


def test_headers_arriving_slowly_within_the_read_timeout_are_waited_for(scripted, call):
    def respond(conn: Conn) -> None:
        data = json.dumps(COMPLETION).encode()
        for line in (b"HTTP/1.1 200 OK\r\n", b"Content-Type: application/json\r\n"):
            conn.send(line)
            time.sleep(0.6)  # each read comes within the 1 s read timeout; the whole takes longer
        conn.send(f"Content-Length: {len(data)}\r\n\r\n".encode() + data)

    scripted(serve_each(respond))

    response = call()

    assert response.status_code == 200, response.text[:300]
    assert_charged(input_tokens=7, output_tokens=3)


def test_a_header_slower_than_the_read_timeout_is_504_read_timeout(scripted, call):
    def respond(conn: Conn) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\n")
        time.sleep(2.5)

    scripted(serve_each(respond))

    response = call()

    found = error(response, 504)
    assert (found["code"], found["details"]) == ("upstream_timeout", {"reason": "ReadTimeout"})
    assert_released()


def test_a_stream_whose_answer_does_not_start_within_the_call_limit_is_504(scripted, call, settings):
    """However patient the read timeout, a streamed call waits for its answer no longer than
    the call may run (aiohttp has no write timeout; this bounds the send too)."""
    scripted(serve_each(lambda conn: time.sleep(3)))
    settings.LLM_UPSTREAM_TIMEOUT_SECONDS = 30.0
    settings.LLM_MAX_CALL_SECONDS = 1

    response = call(stream=True)

    found = error(response, 504)
    assert (found["code"], found["details"]) == ("upstream_timeout", {"max_call_seconds": 1.0})
    assert_released()


def test_a_redirect_is_not_followed_and_is_502(scripted, call):
    server = scripted(serve_each(lambda conn: answer(conn, b"", "Location: /elsewhere", "Content-Length: 0",
                                                     status="307 Temporary Redirect")))  # fmt: skip

    response = call()

    assert error(response, 502)["details"] == {"upstream_status": 307}
    assert [line.split(b" ")[1] for line, _ in server.requests] == [b"/v1/chat/completions"]
    assert_released()


def test_a_cookie_the_upstream_sets_is_not_sent_on_later_calls(scripted, call, settings):
    server = scripted(
        serve_each(lambda conn: json_answer(conn, COMPLETION, "Set-Cookie: route=node-7; Path=/"))
    )
    settings.LLM_UPSTREAM_BASE_URL = server.base_url.replace("127.0.0.1", "localhost")  # a cookie domain

    assert call().status_code == 200
    assert call().status_code == 200

    assert [headers.get("cookie") for _, headers in server.requests] == [None, None]


def test_proxy_variables_in_the_environment_are_ignored(scripted, call, monkeypatch):
    with socket.socket() as probe:  # a proxy nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server = scripted(serve_each(lambda conn: json_answer(conn)))

    response = call()

    assert response.status_code == 200, response.text[:300]
    assert len(server.requests) == 1


# -- connections ending early -------------------------------------------------------------------


def _cut_json(conn: Conn, *, rst: bool) -> None:
    data = json.dumps(COMPLETION).encode()
    answer(conn, data[:20], "Content-Type: application/json", f"Content-Length: {len(data)}")
    time.sleep(0.1)
    conn.reset() if rst else conn.sock.close()


@pytest.mark.parametrize(
    ("respond", "reason"),
    [
        pytest.param(lambda conn: conn.sock.close(), "RemoteProtocolError", id="closed-before-answering"),
        pytest.param(lambda conn: conn.reset(), "ReadError", id="reset-before-answering"),
        pytest.param(lambda conn: _cut_json(conn, rst=False), "RemoteProtocolError", id="closed-mid-body"),
        pytest.param(lambda conn: _cut_json(conn, rst=True), "RemoteProtocolError", id="reset-mid-body"),
        pytest.param(lambda conn: conn.send(b"HTTTP/9 what\r\n\r\n"), "RemoteProtocolError", id="not-http"),
        pytest.param(
            lambda conn: answer(
                conn,
                b"not gzip at all",
                "Content-Type: application/json",
                "Content-Encoding: gzip",
                "Content-Length: 15",
            ),
            "DecodingError",
            id="bad-gzip",
        ),
    ],
)
def test_a_json_call_the_upstream_breaks_off_is_502_and_releases_the_hold(scripted, call, respond, reason):
    scripted(serve_each(respond))

    response = call()

    found = error(response, 502)
    assert (found["code"], found["details"]) == ("upstream_error", {"reason": reason})
    assert_released()


@pytest.mark.parametrize("rst", [False, True], ids=["closed", "reset"])
def test_a_stream_cut_mid_body_says_so_and_charges_what_was_streamed(scripted, call, rst):
    def respond(conn: Conn) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.send(chunked(*STREAM[:3])[: -len(b"0\r\n\r\n")])  # three chunks, no last chunk
        time.sleep(0.1)
        conn.reset() if rst else conn.sock.close()

    scripted(serve_each(respond))

    response = call(stream=True)

    found = stream_error(response)
    assert (found["code"], found["details"]) == ("upstream_error", {"reason": "RemoteProtocolError"})
    assert "broke off the stream" in found["message"]
    assert response.text.count('"content": "tok "') == 3
    row = charged_row()
    assert row.output_tokens == 3 and row.request_metadata["upstream_failure"] == "upstream_error"


def test_a_kept_alive_connection_the_upstream_closed_is_not_reused(scripted, call):
    def script(conn: Conn, server: ScriptedUpstream) -> None:
        request = conn.request()  # one answer per connection, kept alive, then closed while idle
        if request is not None:
            server.record(request)
            json_answer(conn)
            time.sleep(0.2)

    server = scripted(script)

    first = call()
    time.sleep(0.5)  # the upstream has closed the first connection by now
    second = call()

    assert (first.status_code, second.status_code) == (200, 200), second.text[:300]
    assert (len(server.requests), server.connections) == (2, 2)


def test_a_call_on_a_connection_closed_just_after_its_request_is_not_sent_twice(scripted, call):
    """The race a keep-alive connection has: the upstream closes it as the next request goes
    out. A chat completion is not idempotent (the upstream may have started it): it fails
    cleanly, 502, and is never sent a second time."""

    def script(conn: Conn, server: ScriptedUpstream) -> None:
        request = conn.request()
        if request is not None:
            server.record(request)
            json_answer(conn)
        request = conn.request()  # the second call, on the kept-alive connection: closed unanswered
        if request is not None:
            server.record(request)

    server = scripted(script)

    first = call()
    second = call()

    assert first.status_code == 200
    assert error(second, 502)["details"] == {"reason": "RemoteProtocolError"}
    assert (len(server.requests), server.connections) == (2, 1)


# -- the shared session, on bare event loops ----------------------------------------------------


async def _calls(count: int) -> list[Any]:
    return await asyncio.gather(
        *(
            upstream.post_json("chat/completions", BODY, request_id=f"r{n}", provider_key=None)
            for n in range(count)
        )
    )


def _slow_answer(conn: Conn) -> None:
    time.sleep(0.2)
    json_answer(conn)


def test_the_session_holds_at_most_the_configured_connections(scripted, settings):
    settings.LLM_UPSTREAM_MAX_CONNECTIONS = 2
    server = scripted(serve_each(_slow_answer))

    answers = asyncio.run(_calls(6))

    assert [payload for _, payload in answers] == [COMPLETION] * 6
    assert (server.most_open, server.connections) == (2, 2)


def test_each_loop_gets_its_session_and_closes_it_when_it_ends_without_warnings(scripted):
    scripted(serve_each(lambda conn: json_answer(conn)))
    sessions, loops, complaints = [], [], []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        loops[-1].set_exception_handler(lambda loop, context: complaints.append(context))
        await _calls(2)
        sessions.append(await upstream.session())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        asyncio.run(main())
        gc.collect()

    assert sessions[0] is not sessions[1]
    assert all(session.closed for session in sessions)
    assert complaints == [] and unclosed(caught) == []
    assert not set(loops) & set(upstream._sessions)


def test_a_loop_closed_without_finalizing_leaves_no_warning_from_the_session(scripted):
    """Whoever closes a loop without ``shutdown_asyncgens()`` leaks its open sockets (Python
    warns about those); the session itself is dropped quietly by the next loop."""
    scripted(serve_each(lambda conn: json_answer(conn)))
    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(_session_after_a_call())
    loop.close()  # no shutdown_asyncgens(): the session is still open, with a kept-alive connection

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(_calls(1))  # the next loop's first call drops the dead loop's session
        del session
        gc.collect()

    assert unclosed(caught) == []
    assert loop not in upstream._sessions


def unclosed(caught: list[warnings.WarningMessage]) -> list[str]:
    """aiohttp's complaints: an unclosed session, connector or connection, a close not awaited."""
    complaints = (
        "Unclosed client session",
        "Unclosed connector",
        "Unclosed connection",
        "close() is a coroutine",
    )
    return [
        str(w.message)
        for w in caught
        if str(w.message).startswith(complaints) or "never awaited" in str(w.message)
    ]


async def _session_after_a_call() -> Any:
    await _calls(1)
    return await upstream.session()
