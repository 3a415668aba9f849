"""When the upstream fails, times out or cannot be reached, or the caller cannot pay, nothing is
charged and no hold is left behind."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from billing.models import CreditReservation, CreditUsageAttribution
from billing.selectors.reconciliation import find_all_drifts
from tests.billing.gateway.conftest import MODEL, allow_byok, api_key, chat, openai_client
from tests.helpers import snapshot_balances

pytestmark = pytest.mark.usefixtures("model_price")


def balances() -> dict:
    """Balances and ledger rows; holds are compared separately (a released hold stays a row)."""
    snapshot = snapshot_balances()
    snapshot.pop("reservations")
    return snapshot


def assert_nothing_charged(before: dict) -> None:
    assert balances() == before
    assert CreditUsageAttribution.objects.count() == 0
    assert set(CreditReservation.objects.values_list("status", flat=True)) <= {"released"}
    assert find_all_drifts() == []


def error_of(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def test_upstream_500_releases_the_hold_and_answers_502(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    key = api_key(user)
    before = balances()
    upstream.behaviour.mode = "error"

    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client(gateway, key))

    assert caught.value.status_code == 502
    assert error_of(caught.value)["code"] == "upstream_error"
    assert error_of(caught.value)["details"]["upstream_status"] == 500
    assert caught.value.response.headers["X-Request-Id"]
    assert CreditReservation.objects.get().status == "released"
    assert_nothing_charged(before)


def test_upstream_timeout_releases_the_hold_and_answers_504(gateway, upstream, settings, make_funded_member):
    _, user, _ = make_funded_member()
    key = api_key(user)
    before = balances()
    upstream.behaviour.mode = "hang"
    settings.LLM_UPSTREAM_TIMEOUT_SECONDS = 0.5

    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client(gateway, key))

    assert caught.value.status_code == 504
    assert error_of(caught.value)["code"] == "upstream_timeout"
    assert_nothing_charged(before)


def test_streamed_call_timing_out_before_the_first_byte_answers_504(
    gateway, upstream, settings, make_funded_member
):
    _, user, _ = make_funded_member()
    key = api_key(user)
    before = balances()
    upstream.behaviour.mode = "hang"
    settings.LLM_UPSTREAM_TIMEOUT_SECONDS = 0.5

    with pytest.raises(openai.APIStatusError) as caught:
        list(openai_client(gateway, key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}], stream=True
        ))  # fmt: skip

    assert caught.value.status_code == 504
    assert_nothing_charged(before)


def test_refused_connection_releases_the_hold_and_answers_502(gateway, settings, make_funded_member):
    _, user, _ = make_funded_member()
    key = api_key(user)
    before = balances()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.LLM_UPSTREAM_BASE_URL = f"http://127.0.0.1:{port}/v1"

    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client(gateway, key))

    assert caught.value.status_code == 502
    assert error_of(caught.value)["code"] == "upstream_error"
    assert error_of(caught.value)["details"]["reason"] == "ConnectError"
    assert_nothing_charged(before)


class _Refusing(BaseHTTPRequestHandler):
    """An upstream that refuses every call with the status in its server's ``status``."""

    def log_message(self, format, *args):
        return

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"error": {"message": "bad thing", "type": "invalid_request_error"}}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def refusing_upstream(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    server.status = 400
    # A short poll: shutdown() waits for it (the default 0.5 s, once per test).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    settings.LLM_UPSTREAM_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_4xx_is_passed_on_as_upstream_rejected_and_nothing_charged(
    gateway, refusing_upstream, make_funded_member, stream
):
    _, user, _ = make_funded_member()
    key = api_key(user)
    before = balances()

    with pytest.raises(openai.BadRequestError) as caught:
        chat(openai_client(gateway, key), stream=stream)

    error = error_of(caught.value)
    assert error["code"] == "upstream_rejected"
    # our code and the upstream's status; the provider's own text stays in our log
    assert error["message"] == "The model provider rejected the request; nothing was charged."
    assert error["details"] == {"upstream_status": 400}
    assert "bad thing" not in json.dumps(error)
    assert_nothing_charged(before)


def test_upstream_refusing_our_key_is_our_fault_502(gateway, refusing_upstream, make_funded_member):
    _, user, _ = make_funded_member()
    key = api_key(user)
    refusing_upstream.status = 401

    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client(gateway, key))

    assert caught.value.status_code == 502
    assert error_of(caught.value)["code"] == "upstream_error"
    # what the provider said about our key never reaches the caller
    assert error_of(caught.value)["details"] == {"upstream_status": 401}


def test_upstream_refusing_the_callers_own_key_is_passed_on(
    gateway, refusing_upstream, make_funded_member, settings
):
    org, user, _ = make_funded_member()
    allow_byok(settings, org)
    key = api_key(user)
    refusing_upstream.status = 401

    with pytest.raises(openai.AuthenticationError) as caught:
        chat(openai_client(gateway, key, **{"X-Provider-Key": "sk-theirs"}))

    # their own key: they see what the provider said about it
    error = error_of(caught.value)
    assert error["code"] == "upstream_rejected"
    assert error["message"] == "The model provider rejected the request: bad thing"
    assert error["details"]["upstream_error"]["message"] == "bad thing"


def test_insufficient_credits_is_402_before_anything_goes_upstream(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member(pool=100, allocation="0.1")  # 100 millicredits
    key = api_key(user)
    before = balances()

    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client(gateway, key), max_tokens=1000)  # worst case 601+ millicredits

    assert caught.value.status_code == 402
    assert error_of(caught.value)["code"] == "insufficient_credits"
    assert upstream.behaviour.requests == []
    assert balances() == before
    assert CreditReservation.objects.count() == 0


def test_unknown_model_is_400_unknown_model(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    key = api_key(user)
    before = balances()

    with pytest.raises(openai.BadRequestError) as caught:
        chat(openai_client(gateway, key), model="no-such-model")

    assert error_of(caught.value)["code"] == "unknown_model"
    assert error_of(caught.value)["details"] == {"model": "no-such-model"}
    assert upstream.behaviour.requests == []
    assert balances() == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_request"),
        (b"[1, 2]", "malformed_request"),
        (b'{"model": "gw-test-model", "messages": []}', "validation_error"),
        (b'{"model": "gw-test-model", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
         "validation_error"),
        (b'{"model": "gw-test-model", "messages": [{"role": "user", "content": "x"}], "max_tokens": NaN}',
         "malformed_request"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "validation_error"),
    ],
)  # fmt: skip
def test_bad_bodies_are_400_and_change_nothing(gateway, upstream, make_funded_member, body, code):
    import httpx

    _, user, _ = make_funded_member()
    key = api_key(user)
    before = balances()

    response = httpx.post(
        f"{gateway.llm_url}/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert upstream.behaviour.requests == []
    assert balances() == before


def test_gateway_without_upstream_is_503_and_charges_nothing(gateway, settings, make_funded_member):
    _, user, _ = make_funded_member()
    key = api_key(user)
    before = balances()
    settings.LLM_UPSTREAM_BASE_URL = ""

    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client(gateway, key))

    assert caught.value.status_code == 503
    assert error_of(caught.value)["code"] == "gateway_not_configured"
    assert_nothing_charged(before)
