"""The lean chat route (``billing/gateway/lean.py``): the same requests through it and through
Django's route (``LLM_GATEWAY_LEAN_ROUTE`` off) get the same status, headers and body; what
it does not serve goes to Django's route; a client that leaves mid-call is still charged."""

import asyncio
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from django.core.signals import request_started
from django.test import override_settings

from billing.gateway.asgi import GatewayASGIHandler
from billing.gateway.lean import LeanChatRoute
from billing.gateway.pg import close_pools
from billing.models import CreditReservation, CreditUsageAttribution
from billing.selectors.reconciliation import find_all_drifts
from tests.billing.gateway.conftest import MODEL, api_key
from tests.billing.gateway.test_chat import expected_cost

pytestmark = pytest.mark.usefixtures("model_price")

CHAT = "/chat/completions"
PATH = "/api/v1/llm/chat/completions"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "say something short please"}]}
# Differ between any two calls whatever the route: compared for presence only.
PER_CALL_HEADERS = {"date", "x-request-id", "x-credits-remaining"}


@pytest.fixture
def django_routed() -> Iterator[list[Any]]:
    """The requests Django's request handling served (it sends ``request_started``)."""
    started: list[Any] = []

    def receiver(**kwargs: Any) -> None:
        started.append(kwargs)

    request_started.connect(receiver, weak=False, dispatch_uid="test_lean_route")
    yield started
    request_started.disconnect(dispatch_uid="test_lean_route")


@pytest.fixture
def caller(gateway, make_funded_member) -> dict[str, str]:
    """A funded API-key caller whose key, payer and price are in the gateway's cache."""
    _, user, _ = make_funded_member(pool=100, allocation=10)
    key = api_key(user)
    warm = httpx.post(f"{gateway.llm_url}{CHAT}", json=BODY, headers={"Authorization": f"Bearer {key}"})
    assert warm.status_code == 200
    return {"Authorization": f"Bearer {key}"}


def post(gateway, *, lean: bool, settings, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
    settings.LLM_GATEWAY_LEAN_ROUTE = lean
    kwargs.setdefault("json", BODY)
    kwargs.setdefault("timeout", 30)
    return httpx.post(f"{gateway.llm_url}{CHAT}", headers=headers, **kwargs)


def without_request_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: without_request_ids(v) for k, v in value.items() if k not in ("request_id", "id", "created")
        }
    if isinstance(value, list):
        return [without_request_ids(v) for v in value]
    return value


def answer(response: httpx.Response) -> dict[str, Any]:
    """What a caller sees, less what differs between any two calls."""
    headers = {k: v for k, v in response.headers.items() if k not in PER_CALL_HEADERS}
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = [line for line in response.text.split("\n\n") if line]
        body: Any = [
            without_request_ids(json.loads(e[6:])) if e.startswith("data: {") else e.split(" request_id=")[0]
            for e in events
        ]
    else:
        body = without_request_ids(response.json()) if response.content else b""
    return {
        "status": response.status_code,
        "headers": headers,
        "per_call_headers": sorted(k for k in response.headers if k in PER_CALL_HEADERS),
        "body": body,
    }


CASES: dict[str, dict[str, Any]] = {
    "completion": {},
    "stream": {"json": {**BODY, "stream": True}},
    "stream with usage": {"json": {**BODY, "stream": True, "stream_options": {"include_usage": True}}},
    "malformed json": {"content": b'{"model": ', "headers": {"Content-Type": "application/json"}},
    "nul in the body": {"json": {**BODY, "user": "a\u0000b"}},
    # A price the cache does not have is read on the threads: Django's route answers it.
    "unknown model": {"json": {**BODY, "model": "no-such-model"}, "handed_over": True},
    "unknown key": {"headers": {"Authorization": "Bearer obk_not-a-key"}},
    "caller's request id": {"headers": {"X-Request-Id": "lean-route-test-id"}},
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_lean_route_answers_exactly_as_djangos_route(gateway, caller, settings, django_routed, case):
    # given: the same request for each route (a caller's request id must not be replayed)
    def request(lean: bool) -> httpx.Response:
        headers = {**caller, **case.get("headers", {})}
        if "X-Request-Id" in headers:
            headers["X-Request-Id"] += "-lean" if lean else "-django"
        return post(gateway, lean=lean, settings=settings, headers=headers,
                    **{k: v for k, v in case.items() if k not in ("headers", "handed_over")})  # fmt: skip

    # when
    lean = request(lean=True)
    served_lean = not django_routed
    django = request(lean=False)

    # then
    assert served_lean is not case.get("handed_over", False)
    assert django_routed  # Django's route served the second
    assert answer(lean) == answer(django)
    if "X-Request-Id" in case.get("headers", {}):
        assert lean.headers["X-Request-Id"] == "lean-route-test-id-lean"
        assert django.headers["X-Request-Id"] == "lean-route-test-id-django"


def asgi_call(app: Any, sent: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One POST to the chat endpoint through ``app``, in this process, on a loop of its own."""

    async def call() -> tuple[int, dict[str, str], bytes]:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
            "headers": [(k.lower().encode(), v.encode()) for k, v in {"Host": "localhost", **sent}.items()],
        }  # fmt: skip
        written: list[Mapping[str, Any]] = []
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await asyncio.Event().wait()  # the client stays
            raise AssertionError

        async def send(message: Mapping[str, Any]) -> None:
            written.append(message)

        try:
            await app(scope, receive, send)
        finally:
            await close_pools()
        start = written[0]
        answered = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        answered = {k: v for k, v in answered.items() if k not in PER_CALL_HEADERS}
        return start["status"], answered, b"".join(m.get("body", b"") for m in written[1:])

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("configured", "headers", "status"),
    [
        ({"SECURE_HSTS_SECONDS": 3600}, {"X-Forwarded-Proto": "https"}, 200),
        ({"SECURE_SSL_REDIRECT": True}, {}, 301),
        ({"ALLOWED_HOSTS": ["127.0.0.1"]}, {}, 400),
    ],
    ids=["hsts", "https redirect", "host not allowed"],
)
def test_security_settings_apply_the_same_on_both_routes(caller, django_routed, configured, headers, status):
    # given: both routes built under the settings (the security middleware reads them once)
    body = json.dumps(BODY).encode()
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), **configured):
        lean, django = LeanChatRoute(fallback=GatewayASGIHandler()), GatewayASGIHandler()

        # when
        answers = [asgi_call(app, {**caller, **headers}, body) for app in (lean, django)]

    # then
    assert len(django_routed) == 1  # the second: the lean route answered the first itself
    assert [a[0] for a in answers] == [status, status]
    assert answers[0][1] == answers[1][1]
    if status == 200:
        assert answers[0][1]["strict-transport-security"] == "max-age=3600"
        assert without_request_ids(json.loads(answers[0][2])) == without_request_ids(
            json.loads(answers[1][2])
        )
    else:
        assert answers[0][2] == answers[1][2]
    if status == 301:
        assert answers[0][1]["location"] == f"https://localhost{PATH}"


def test_a_body_over_the_limit_goes_to_djangos_route_as_it_was_sent(gateway, caller, settings, django_routed):
    settings.LLM_MAX_BODY_BYTES = 2000
    big = json.dumps({**BODY, "user": "x" * 3000}).encode()

    def chunked() -> Iterator[bytes]:  # no Content-Length: the lean route finds out while reading
        yield from (big[i : i + 500] for i in range(0, len(big), 500))

    declared = post(gateway, lean=True, settings=settings, headers=caller, content=big)
    streamed = post(gateway, lean=True, settings=settings, headers=caller, content=chunked())
    django = post(gateway, lean=False, settings=settings, headers=caller, content=big)

    assert [r.status_code for r in (declared, streamed, django)] == [413, 413, 413]
    assert answer(declared) == answer(streamed) == answer(django)
    assert len(django_routed) == 3


def test_callers_the_lean_route_does_not_serve_get_djangos_route(gateway, caller, settings, django_routed):
    cookie = post(gateway, lean=True, settings=settings, headers={**caller, "Cookie": "sessionid=nope"})
    byok = post(gateway, lean=True, settings=settings, headers={**caller, "X-Provider-Key": "sk-own"})
    get = httpx.get(f"{gateway.llm_url}{CHAT}", headers=caller)

    assert cookie.status_code == 200
    assert 400 <= byok.status_code < 500 and "code" in byok.json()["error"]  # BYOK is off here
    assert (get.status_code, get.headers["Allow"]) == (405, "POST")
    assert len(django_routed) == 3


def test_a_call_the_loop_cannot_admit_is_handed_to_djangos_route_with_its_body(
    gateway, settings, make_funded_member, django_routed
):
    # given: a key the gateway has not seen (its cache is warm from another caller)
    _, other, _ = make_funded_member(pool=100, allocation=10)
    post(gateway, lean=True, settings=settings, headers={"Authorization": f"Bearer {api_key(other)}"})
    _, user, _ = make_funded_member(pool=100, allocation=10)
    headers = {"Authorization": f"Bearer {api_key(user)}"}
    django_routed.clear()

    # when: its first call (the key is read on the threads) and its second
    first = post(gateway, lean=True, settings=settings, headers=headers)
    handed_over = len(django_routed)
    second = post(gateway, lean=True, settings=settings, headers=headers)

    # then: both answered and charged; only the first went through Django's request handling
    assert (first.status_code, second.status_code) == (200, 200)
    assert (handed_over, len(django_routed)) == (1, 1)
    assert first.json()["choices"] == second.json()["choices"]
    assert CreditUsageAttribution.objects.filter(user=user).count() == 2


def settled(request_id: str, timeout: float = 15) -> CreditUsageAttribution:
    deadline = time.monotonic() + timeout
    while not CreditUsageAttribution.objects.filter(request_id=request_id).exists() or (
        CreditReservation.objects.filter(status=CreditReservation.Status.HELD).exists()
    ):
        assert time.monotonic() < deadline, "the call was not settled"
        time.sleep(0.05)
    return CreditUsageAttribution.objects.get(request_id=request_id)


def test_a_client_that_leaves_mid_stream_on_the_lean_route_is_charged_the_upstreams_usage(
    gateway, caller, upstream, settings, django_routed
):
    # given: a slow stream of 60 tokens
    upstream.behaviour.completion_tokens = 60
    upstream.behaviour.token_delay = 0.02
    request_id = f"lean-leaves-{uuid.uuid4()}"
    settings.LLM_GATEWAY_LEAN_ROUTE = True

    # when: the client reads three events and closes the connection
    with httpx.stream("POST", f"{gateway.llm_url}{CHAT}", json={**BODY, "stream": True},
                      headers={**caller, "X-Request-Id": request_id}, timeout=30) as response:  # fmt: skip
        events = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line)
            if len(events) == 3:
                break

    # then: the gateway read on to the upstream's usage and charged it, as Django's route does
    row = settled(request_id)
    assert not django_routed
    assert (row.input_tokens, row.output_tokens) == (4, 60)
    assert row.credits_used == expected_cost(4, 60)
    assert row.request_metadata["usage_source"] == "upstream"
    assert row.request_metadata["client_disconnected"] is True
    assert find_all_drifts() == []


def test_a_json_call_whose_client_gave_up_is_still_charged_on_the_lean_route(
    gateway, caller, upstream, settings, django_routed
):
    upstream.behaviour.latency = 1.0
    request_id = f"lean-gave-up-{uuid.uuid4()}"

    with pytest.raises(httpx.ReadTimeout):
        post(
            gateway, lean=True, settings=settings, headers={**caller, "X-Request-Id": request_id}, timeout=0.3
        )

    row = settled(request_id)
    assert not django_routed
    assert row.request_metadata["usage_source"] == "upstream"
    assert row.credits_used > 0
    assert find_all_drifts() == []


def test_a_stream_whose_writes_fail_on_the_lean_route_still_settles_with_the_upstreams_usage(
    caller, upstream, django_routed
):
    # given: a client whose connection fails once the first event is written to it, and an
    # upstream whose events come apart (one read each), so the failing write is mid-stream
    upstream.behaviour.completion_tokens = 30
    upstream.behaviour.token_delay = 0.01
    request_id = f"lean-write-fails-{uuid.uuid4()}"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
        "headers": [(b"host", b"localhost"), (b"x-request-id", request_id.encode()),
                    *[(k.lower().encode(), v.encode()) for k, v in caller.items()]],
    }  # fmt: skip
    body = json.dumps({**BODY, "stream": True}).encode()
    written: list[Mapping[str, Any]] = []

    async def call() -> None:
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await asyncio.Event().wait()  # no http.disconnect: only the writes tell
            raise AssertionError

        async def send(message: Mapping[str, Any]) -> None:
            if len(written) >= 2:
                raise OSError("connection reset by peer")
            written.append(message)

        try:
            await LeanChatRoute(fallback=GatewayASGIHandler())(scope, receive, send)
        finally:
            await close_pools()

    # when
    asyncio.run(call())

    # then: one event went out; the gateway read the rest and charged the upstream's usage
    row = settled(request_id)
    assert not django_routed
    assert [m["type"] for m in written] == ["http.response.start", "http.response.body"]
    assert written[0]["status"] == 200
    assert (row.input_tokens, row.output_tokens) == (4, 30)
    assert row.request_metadata["usage_source"] == "upstream"
    assert row.request_metadata["client_disconnected"] is True
    assert find_all_drifts() == []
