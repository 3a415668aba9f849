"""A local stand-in for the Stripe endpoints we use (localstripe has no Checkout Sessions), on
a real HTTP server driven by the real ``stripe`` library, and Stripe's side of webhooks:
events built from ``fixtures/stripe/*.json`` and signed with Stripe's scheme
(``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint secret>``).
"""

import copy
import hashlib
import hmac
import itertools
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
SECRET_KEY = "sk_test_orgbilling_fake"
WEBHOOK_SECRET = "whsec_orgbilling_test_secret"
_ids = itertools.count(1)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def sign(body: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``body``, computed as Stripe does."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _form_to_nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=v``) back into nested dicts (lists as index dicts)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root


class FakeStripe:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.api_base = server.url_for("/").rstrip("/")
        self.sessions: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []  # the decoded bodies of session creations
        self.idempotency_keys: list[str | None] = []
        # Off-session PaymentIntents (auto top-up): every decoded body received, and the intents.
        self.intent_requests: list[dict[str, Any]] = []
        self.intent_idempotency_keys: list[str | None] = []
        self.intents: dict[str, dict[str, Any]] = {}
        self.declines: list[str] = []  # decline codes for the next intents, in order

    def install(self) -> None:
        self.server.clear()
        self.sessions.clear()
        self.created.clear()
        self.idempotency_keys.clear()
        self.intent_requests.clear()
        self.intent_idempotency_keys.clear()
        self.intents.clear()
        self.declines.clear()
        self.server.expect_request("/v1/checkout/sessions", method="POST").respond_with_handler(self._create)
        self.server.expect_request("/v1/payment_intents", method="POST").respond_with_handler(
            self._create_intent
        )

    def fail_next(self, status: int = 500, times: int = 1, *, path: str = "/v1/checkout/sessions") -> None:
        body = {"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}
        for _ in range(times):
            self.server.expect_oneshot_request(path, method="POST").respond_with_json(body, status=status)

    @staticmethod
    def _unauthorized(request: Request) -> Response | None:
        if request.headers.get("Authorization") == f"Bearer {SECRET_KEY}":
            return None
        body = {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        return Response(json.dumps(body), status=401, content_type="application/json")

    def _create_intent(self, request: Request) -> Response:
        """POST /v1/payment_intents with ``confirm`` and ``off_session``: succeeds at once, or is
        declined (402 ``card_error`` carrying the failed intent) when a decline is queued."""
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        key = request.headers.get("Idempotency-Key")
        self.intent_idempotency_keys.append(key)
        sent = _form_to_nested(parse_qsl(request.get_data(as_text=True)))
        self.intent_requests.append(sent)
        for intent in self.intents.values():
            if key and intent["_idempotency_key"] == key:  # Stripe replays an idempotent create
                return self._json(intent) if intent["status"] == "succeeded" else self._decline(intent)
        n = next(_ids)
        amount = int(sent["amount"])
        intent = fixture("payment_intent_succeeded")
        intent.update(
            id=f"pi_test_{n:06d}",
            amount=amount,
            amount_received=amount,
            currency=sent["currency"],
            customer=sent["customer"],
            payment_method=sent["payment_method"],
            description=sent.get("description"),
            metadata=sent.get("metadata", {}),
            latest_charge=f"ch_test_{n:06d}",
            _idempotency_key=key,
        )
        if self.declines:
            failed = fixture("payment_intent")  # Stripe's intent after a declined attempt
            failed["last_payment_error"]["decline_code"] = self.declines.pop(0)
            intent.update(
                status="requires_payment_method",
                amount_received=0,
                last_payment_error=failed["last_payment_error"],
            )
        self.intents[intent["id"]] = intent
        return self._json(intent) if intent["status"] == "succeeded" else self._decline(intent)

    def _decline(self, intent: dict[str, Any]) -> Response:
        body = fixture("card_error")
        body["error"].update(
            charge=intent["latest_charge"],
            decline_code=intent["last_payment_error"]["decline_code"],
            payment_intent={k: v for k, v in intent.items() if not k.startswith("_")},
        )
        return Response(json.dumps(body), status=402, content_type="application/json")

    def intent_event_object(self, intent_id: str) -> dict[str, Any]:
        """The intent as a ``payment_intent.succeeded``/``payment_failed`` event carries it."""
        return {k: v for k, v in self.intents[intent_id].items() if not k.startswith("_")}

    def failed_intent(self, intent_id: str) -> dict[str, Any]:
        """The same intent, declined after all (e.g. a delayed failure reported by webhook)."""
        failed = fixture("payment_intent")
        intent = self.intent_event_object(intent_id)
        return {
            **intent,
            "status": "requires_payment_method",
            "amount_received": 0,
            "last_payment_error": failed["last_payment_error"],
        }

    def checkout_payment_intent(
        self, session_id: str, *, payment_method: str = "pm_card_visa", customer: str = "cus_test_new"
    ) -> dict[str, Any]:
        """The PaymentIntent of a paid Checkout Session (``payment_intent.succeeded``), with the
        card saved for off-session use when the session asked for it."""
        session = self.sessions[session_id]
        intent = fixture("payment_intent_succeeded")
        intent.update(
            id=f"pi_for_{session_id}",
            amount=session["amount_total"],
            amount_received=session["amount_total"],
            customer=session["_customer"] or customer,
            payment_method=payment_method,
            setup_future_usage=session["_setup_future_usage"],
            metadata=session["_payment_intent_metadata"],
            latest_charge=f"ch_for_{session_id}",
        )
        return intent

    def _create(self, request: Request) -> Response:
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        key = request.headers.get("Idempotency-Key")
        self.idempotency_keys.append(key)
        for session in self.sessions.values():
            if key and session["_idempotency_key"] == key:  # Stripe replays an idempotent create
                return self._json(session)
        sent = _form_to_nested(parse_qsl(request.get_data(as_text=True)))
        self.created.append(sent)
        n = next(_ids)
        session = fixture("checkout_session")
        item = sent["line_items"]["0"]
        amount = int(item["price_data"]["unit_amount"]) * int(item["quantity"])
        session.update(
            id=f"cs_test_{n:06d}",
            url=f"https://checkout.stripe.com/c/pay/cs_test_{n:06d}",
            amount_subtotal=amount,
            amount_total=amount,
            currency=item["price_data"]["currency"],
            client_reference_id=sent.get("client_reference_id"),
            metadata=sent.get("metadata", {}),
            success_url=sent["success_url"],
            cancel_url=sent["cancel_url"],
            customer_email=sent.get("customer_email"),
            _idempotency_key=key,
            customer=sent.get("customer"),
            _payment_intent_metadata=sent.get("payment_intent_data", {}).get("metadata", {}),
            _setup_future_usage=sent.get("payment_intent_data", {}).get("setup_future_usage"),
            _customer=sent.get("customer"),
        )
        self.sessions[session["id"]] = session
        return self._json(session)

    @staticmethod
    def _json(session: dict[str, Any]) -> Response:
        public = {k: v for k, v in session.items() if not k.startswith("_")}
        return Response(json.dumps(public), status=200, content_type="application/json")

    # --- events --------------------------------------------------------------------------------

    @staticmethod
    def event(event_type: str, obj: dict[str, Any]) -> str:
        """A full event JSON body (as Stripe would POST it)."""
        event = fixture("event")
        event.update(id=f"evt_test_{next(_ids):06d}", type=event_type, data={"object": obj})
        return json.dumps(event)

    def completed_session(self, session_id: str, *, payment_status: str = "paid") -> dict[str, Any]:
        session = copy.deepcopy(self.sessions[session_id])
        session.update(
            status="complete",
            payment_status=payment_status,
            payment_intent=f"pi_for_{session_id}",
            customer_details={"email": session.get("customer_email"), "name": "Buyer"},
        )
        return {k: v for k, v in session.items() if not k.startswith("_")}

    def expired_session(self, session_id: str) -> dict[str, Any]:
        session = {k: v for k, v in self.sessions[session_id].items() if not k.startswith("_")}
        return {**session, "status": "expired"}

    def failed_payment_intent(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        intent = fixture("payment_intent")
        intent.update(
            id=f"pi_for_{session_id}",
            amount=session["amount_total"],
            metadata=session["_payment_intent_metadata"],
        )
        return intent

    def refunded_charge(self, session_id: str, *, amount_refunded: int | None = None) -> dict[str, Any]:
        session = self.sessions[session_id]
        refunded = session["amount_total"] if amount_refunded is None else amount_refunded
        charge = fixture("charge")
        charge.update(
            id=f"ch_for_{session_id}",
            amount=session["amount_total"],
            amount_captured=session["amount_total"],
            amount_refunded=refunded,
            refunded=refunded >= session["amount_total"],
            payment_intent=f"pi_for_{session_id}",
        )
        return charge

    def dispute(self, session_id: str, *, reason: str = "fraudulent") -> dict[str, Any]:
        """A chargeback opened on the session's charge (the fields of Stripe's Dispute we read)."""
        session = self.sessions[session_id]
        return {
            "id": f"dp_for_{session_id}",
            "object": "dispute",
            "amount": session["amount_total"],
            "currency": session["currency"],
            "charge": f"ch_for_{session_id}",
            "payment_intent": f"pi_for_{session_id}",
            "reason": reason,
            "status": "needs_response",
            "metadata": {},
        }
