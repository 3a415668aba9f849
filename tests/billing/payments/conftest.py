"""Fixtures of the payments tests: a real local Lago and a real local Stripe stand-in (each a
threaded HTTP server started once per session and reset per test), and settings pointing at them."""

import threading

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.fakes import lago as fake_lago_module
from tests.fakes import stripe as fake_stripe_module
from tests.fakes.lago import FakeLago
from tests.fakes.stripe import FakeStripe


class TrackedHTTPServer(HTTPServer):
    """An ``HTTPServer`` that knows its requests in flight. A test whose client gave up on a slow
    answer (a timeout test) leaves the request running; its fixture waits for it to end, or it
    would land in the request log of whichever test the same process runs next."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._idle = threading.Condition()
        self._in_flight = 0

    def application(self, request: Request) -> Response:
        with self._idle:
            self._in_flight += 1
        try:
            return super().application(request)  # answers, then appends to the log
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> None:
        with self._idle:
            assert self._idle.wait_for(lambda: self._in_flight == 0, timeout), "a request never ended"

    def clear(self) -> None:
        self.wait_idle()
        super().clear()


@pytest.fixture(scope="session")
def _lago_server():
    server = TrackedHTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture(scope="session")
def _stripe_server():
    server = TrackedHTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def fake_lago(_lago_server, settings) -> FakeLago:
    """Lago at a local URL, selected as the subscription backend."""
    fake = FakeLago(_lago_server)
    fake.install()
    settings.SUBSCRIPTION_BACKEND = "lago"
    settings.LAGO_API_URL = fake.url
    settings.LAGO_API_KEY = fake_lago_module.API_KEY
    settings.LAGO_TIMEOUT_SECONDS = 2.0
    settings.LAGO_WEBHOOK_HMAC_SECRET = "lago-hmac-token"
    settings.LAGO_PENDING_RETRY_AFTER_SECONDS = 0
    settings.LAGO_INVOICE_PAGE_SIZE = 2
    yield fake
    _lago_server.clear()


@pytest.fixture
def fake_stripe(_stripe_server, settings) -> FakeStripe:
    """Stripe's API at a local URL, with keys, return URLs and the webhook secret configured."""
    fake = FakeStripe(_stripe_server)
    fake.install()
    settings.STRIPE_SECRET_KEY = fake_stripe_module.SECRET_KEY
    settings.STRIPE_API_BASE = fake.api_base
    settings.STRIPE_WEBHOOK_SECRET = fake_stripe_module.WEBHOOK_SECRET
    settings.STRIPE_CHECKOUT_SUCCESS_URL = "https://app.example.test/billing?checkout=success"
    settings.STRIPE_CHECKOUT_CANCEL_URL = "https://app.example.test/billing?checkout=canceled"
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    yield fake
    _stripe_server.clear()


@pytest.fixture
def org_team(team):
    """An org with 1,000 credits, a member holding 100 of them, an admin, an outsider
    (``team`` of tests/billing/conftest.py, under the name these tests use)."""
    return team
