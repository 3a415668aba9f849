"""A local stand-in for the Lago API, on a real HTTP server (pytest-httpserver), driven by the
real ``lago-python-client``. Payloads come from ``fixtures/lago/*.json`` (full response models);
tests read back the JSON bodies the client sent from ``requests(...)``.

It also plays Lago's webhook side: an RSA key pair whose public key it serves at
``GET /api/v1/webhooks/json_public_key``, and ``jwt_signature``/``hmac_signature`` of a body.
"""

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_httpserver import HTTPServer, URIPattern
from werkzeug import Request, Response

FIXTURES = Path(__file__).parent / "fixtures" / "lago"
API_KEY = "lago-test-api-key"
ISSUER = "https://api.getlago.com"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def customer_lago_id(org_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "lago-customer-" + org_id))


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _rsa_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None


class FakeLago:
    """Stateful enough for our calls: customers upsert, subscriptions are kept by external_id."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.private_key, self.public_key = _rsa_pair()
        self.url = server.url_for("/")
        self.invoices: dict[str, list[dict[str, Any]]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, dict[str, Any]] = {}
        self.delay_seconds = 0.0
        self.terminate_answer_delay = 0.0

    # --- lifecycle ---------------------------------------------------------------------------

    def install(self) -> None:
        self.server.clear()
        self.invoices.clear()
        self.subscriptions.clear()
        self.plans.clear()
        self.delay_seconds = 0.0
        self.terminate_answer_delay = 0.0
        self.server.expect_request("/api/v1/customers", method="POST").respond_with_handler(self._customer)
        self.server.expect_request("/api/v1/subscriptions", method="POST").respond_with_handler(
            self._subscribe
        )
        self.server.expect_request(_Prefix("/api/v1/subscriptions/"), method="DELETE").respond_with_handler(
            self._terminate
        )
        self.server.expect_request("/api/v1/invoices", method="GET").respond_with_handler(self._invoices)
        self.server.expect_request("/api/v1/plans", method="POST").respond_with_handler(self._plan_create)
        self.server.expect_request(_Prefix("/api/v1/plans/"), method="PUT").respond_with_handler(
            self._plan_update
        )
        self.server.expect_request("/api/v1/webhooks/json_public_key", method="GET").respond_with_handler(
            self._public_key
        )

    def fail_next(self, path: str, method: str, status: int = 500, times: int = 1) -> None:
        """The next ``times`` calls to ``path`` answer ``status`` (checked before the normal routes)."""
        body = fixture("error_500") if status >= 500 else {"status": status, "error": "Unprocessable"}
        for _ in range(times):
            self.server.expect_oneshot_request(path, method=method).respond_with_json(body, status=status)

    # --- inspection --------------------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        found = []
        for request, _response in self.server.log:
            if method and request.method != method:
                continue
            if path and request.path != path:
                continue
            raw = request.get_data()
            found.append(
                Recorded(
                    method=request.method,
                    path=request.path,
                    query=dict(request.args),
                    body=json.loads(raw) if raw else None,
                    authorization=request.headers.get("Authorization"),
                )
            )
        return found

    # --- webhooks ----------------------------------------------------------------------------

    def jwt_signature(self, body: str, *, private_key: bytes | None = None, issuer: str = ISSUER) -> str:
        return jwt.encode({"data": body, "iss": issuer}, private_key or self.private_key, algorithm="RS256")

    @staticmethod
    def hmac_signature(body: bytes, secret: str) -> str:
        return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()

    def invoice(self, org_id: str, *, number: str, cents: int, payment_status: str = "pending", **extra: Any):
        invoice = fixture("invoice")
        invoice.update(
            lago_id=str(uuid.uuid4()),
            number=number,
            payment_status=payment_status,
            total_amount_cents=cents,
            fees_amount_cents=cents,
            sub_total_excluding_taxes_amount_cents=cents,
            sub_total_including_taxes_amount_cents=cents,
            total_due_amount_cents=cents,
            **extra,
        )
        invoice["customer"].update(external_id=org_id, name=f"Org {org_id}")
        return invoice

    def subscription_payload(self, *, org_id: str, external_id: str, plan_code: str, **extra: Any):
        sub = copy.deepcopy(fixture("subscription")["subscription"])
        sub.update(
            lago_id=str(uuid.uuid4()),
            external_id=external_id,
            external_customer_id=org_id,
            lago_customer_id=customer_lago_id(org_id),
            plan_code=plan_code,
            name=plan_code,
            **extra,
        )
        return sub

    # --- routes ------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return _json({"status": 401, "error": "Unauthorized"}, status=401)
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        return None

    def _customer(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused:
            return refused
        sent = request.get_json()["customer"]
        body = fixture("customer")
        body["customer"].update(
            external_id=sent["external_id"],
            name=sent.get("name"),
            email=sent.get("email"),
            lago_id=customer_lago_id(sent["external_id"]),
        )
        return _json(body)

    def _subscribe(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused:
            return refused
        sent = request.get_json()["subscription"]
        existing = self.subscriptions.get(sent["external_id"])
        if existing is None or existing["status"] == "terminated":
            # Lago starts a new subscription when none is live under this external_id.
            existing = self.subscription_payload(
                org_id=sent["external_customer_id"],
                external_id=sent["external_id"],
                plan_code=sent["plan_code"],
            )
            self.subscriptions[sent["external_id"]] = existing
        elif existing["plan_code"] != sent["plan_code"]:
            existing.update(previous_plan_code=existing["plan_code"], plan_code=sent["plan_code"])
        return _json({"subscription": existing})

    def _terminate(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused:
            return refused
        external_id = request.path.rsplit("/", 1)[-1]
        sub = self.subscriptions.get(external_id)
        if sub is None or sub["status"] == "terminated":
            return _json(fixture("error_404"), status=404)
        sub.update(status="terminated", terminated_at="2026-01-15T10:00:00Z")
        if self.terminate_answer_delay:
            time.sleep(self.terminate_answer_delay)  # done at Lago, the answer comes late
        return _json({"subscription": sub})

    def _invoices(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused:
            return refused
        org_id = request.args.get("external_customer_id", "")
        per_page = int(request.args.get("per_page", 20))
        page = int(request.args.get("page", 1))
        invoices = self.invoices.get(org_id, [])
        total_pages = max(1, -(-len(invoices) // per_page))
        chunk = invoices[(page - 1) * per_page : page * per_page]
        meta = {
            "current_page": page,
            "next_page": page + 1 if page < total_pages else None,
            "prev_page": page - 1 if page > 1 else None,
            "total_pages": total_pages,
            "total_count": len(invoices),
        }
        return _json({"invoices": chunk, "meta": meta})

    def _plan_body(self, sent: dict[str, Any]) -> dict[str, Any]:
        body = fixture("plan")
        body["plan"].update(
            lago_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "lago-plan-" + sent["code"])),
            name=sent["name"],
            code=sent["code"],
            amount_cents=sent["amount_cents"],
            amount_currency=sent["amount_currency"],
            interval=sent["interval"],
        )
        return body

    def _plan_create(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused:
            return refused
        sent = request.get_json()["plan"]
        self.plans[sent["code"]] = sent
        return _json(self._plan_body(sent))

    def _plan_update(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused:
            return refused
        code = request.path.rsplit("/", 1)[-1]
        if code not in self.plans:
            return _json({"status": 404, "error": "Not Found", "code": "plan_not_found"}, status=404)
        sent = request.get_json()["plan"]
        self.plans[code] = sent
        return _json(self._plan_body(sent))

    def _public_key(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused:
            return refused
        return _json({"webhook": {"public_key": base64.b64encode(self.public_key).decode()}})


class _Prefix(URIPattern):
    """A URI matcher for pytest-httpserver: any path under ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def match(self, uri: str) -> bool:
        return uri.startswith(self.prefix)
