"""The served app under concurrent HTTP load: a real uvicorn process with the connection pool,
hundreds of simultaneous mixed requests, the server's own count of the app's connections.

Issue 10's finding: 50 concurrent charges against the unpooled app exhausted PostgreSQL's
connections and locked operators out. Here the app's connections never exceed its pool, a
fresh connection can be opened at any moment, and a pool smaller than the load answers
503 ``database_busy`` with ``Retry-After`` — never a 500, never a hang — after which the
client's retry with the same ``request_id`` is charged exactly once.
"""

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from billing.models import CreditReservation, CreditUsageAttribution, ModelPrice, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from organizations.models import Organization, User
from organizations.services import add_member, create_api_key
from tests.factories import OrganizationFactory, UserFactory
from tests.fake_upstream import FakeUpstream, running_upstream
from tests.helpers import mc
from tests.served import ServedApp, app_connections, run_database_url, served_app

MODEL = "load-model"
API = "/api/v1/org-billing"


@dataclass
class Team:
    org: Organization
    admin_key: str
    service_key: str
    members: list[tuple[User, str]] = field(default_factory=list)


def _key(user: User, org: Organization, *scopes: str) -> str:
    return create_api_key(user=user, name="load", org_id=org.id, scopes=list(scopes))[1]


def build_teams(count: int, members: int) -> list[Team]:
    from billing.services import add_credits_to_pool, allocate_credits_to_user

    ModelPrice.objects.create(
        model=MODEL,
        input_credits_per_million=Decimal("150"),
        output_credits_per_million=Decimal("600"),
        max_output_tokens=200,
    )
    teams = []
    for _ in range(count):
        org = OrganizationFactory()
        add_credits_to_pool(org_id=org.id, amount=mc(100_000), actor_label="test")
        admin = UserFactory()
        add_member(org_id=org.id, user=admin, role="admin", actor_label="test")
        team = Team(org, _key(admin, org, "read", "write"), _key(admin, org, "charge"))
        for _ in range(members):
            user = UserFactory()
            add_member(org_id=org.id, user=user, actor_label="test")
            allocate_credits_to_user(org_id=org.id, user=user, amount=mc(1_000), actor_label="test")
            team.members.append((user, _key(user, org, "read", "write")))
        teams.append(team)
    return teams


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str
    key: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def mixed_calls(teams: list[Team], total: int) -> list[Call]:
    """Reads dominate; every kind of write and the gateway (JSON and streamed) are in the mix."""
    calls: list[Call] = []
    n = 0
    while len(calls) < total:
        for team in teams:
            user, key = team.members[n % len(team.members)]
            other, _ = team.members[(n + 1) % len(team.members)]
            org = team.org.id
            chat = {
                "model": MODEL,
                "messages": [{"role": "user", "content": "hello there"}],
                "max_tokens": 50,
            }
            calls += [
                Call("pool", "GET", f"{API}/credits/{org}", key),
                Call("my dashboard", "GET", f"{API}/billing/user", key),
                Call("allocations", "GET", f"{API}/credits/{org}/allocations", team.admin_key),
                Call("org dashboard", "GET", f"{API}/billing/org/{org}", team.admin_key),
                Call("csv export", "GET", f"{API}/usage/{org}/by-model?format=csv", team.admin_key),
                Call("usage", "GET", f"{API}/credits/{org}/usage", key),
                Call(
                    "allocate", "POST", f"{API}/credits/{org}/allocate", team.admin_key,
                    {"user_id": user.username, "credits": 1}, {"Idempotency-Key": uuid.uuid4().hex},
                ),
                Call(
                    "transfer", "POST", f"{API}/credits/{org}/transfer", team.admin_key,
                    {"from_user_id": user.username, "to_user_id": other.username, "credits": 0.5},
                    {"Idempotency-Key": uuid.uuid4().hex},
                ),
                Call(
                    "charge", "POST", f"{API}/charges", team.service_key,
                    {"user_id": user.username, "org_id": org, "model": MODEL, "input_tokens": 100,
                     "output_tokens": 20, "request_id": f"load-{uuid.uuid4().hex}"},
                ),
                Call("gateway", "POST", "/api/v1/llm/chat/completions", key, chat),
                Call("gateway stream", "POST", "/api/v1/llm/chat/completions", key, {**chat, "stream": True}),
            ]  # fmt: skip
            n += 1
    return calls[:total]


@dataclass
class Outcome:
    call: Call
    status: int
    body: bytes
    headers: httpx.Headers


async def _send(client: httpx.AsyncClient, call: Call, start: asyncio.Event) -> Outcome:
    await start.wait()  # every request leaves at once
    headers = {"Authorization": f"Bearer {call.key}", **call.headers}
    response = await client.request(call.method, call.path, json=call.body, headers=headers)
    return Outcome(call, response.status_code, response.content, response.headers)


async def _fire(app: ServedApp, calls: list[Call]) -> list[Outcome]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=app.url, limits=limits, timeout=120) as client:
        start = asyncio.Event()
        tasks = [asyncio.create_task(_send(client, call, start)) for call in calls]
        await asyncio.sleep(0.2)
        start.set()
        return list(await asyncio.gather(*tasks))


def fire(app: ServedApp, calls: list[Call]) -> list[Outcome]:
    return asyncio.run(_fire(app, calls))


class ConnectionWatch:
    """From outside the app, every 50 ms: how many connections the app holds (the server's
    count), and whether an operator could open a fresh connection right now."""

    def __init__(self) -> None:
        self.peak = 0
        self.samples = 0
        self.refused: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._url = run_database_url().replace("postgres://", "postgresql://")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, connect_timeout=5, application_name="operator") as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name = 'orgbilling-web'"
                    ).fetchone()
                self.peak = max(self.peak, int(row[0]) if row else 0)
                self.samples += 1
            except psycopg.Error as exc:
                self.refused.append(str(exc))
            self._stop.wait(0.05)

    def __enter__(self) -> "ConnectionWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstream() as up:
        up.behaviour.latency = 0.05  # a model takes a while: connections must not be held meanwhile
        yield up


def app_environment(upstream: FakeUpstream, **overrides: str) -> dict[str, str]:
    return {
        "LLM_UPSTREAM_BASE_URL": upstream.base_url,
        "LLM_UPSTREAM_API_KEY": "sk-upstream",
        "DB_POOL_MIN_SIZE": "1",
        **overrides,
    }


def assert_ledger_clean() -> None:
    assert find_all_drifts() == []
    assert not CreditReservation.objects.filter(status=CreditReservation.Status.HELD).exists()
    for allocation in UserCreditAllocation.objects.all():
        assert allocation.used_credits + allocation.reserved_credits <= allocation.allocated_credits


def test_300_concurrent_mixed_requests_stay_within_the_pool(transactional_db, upstream, tmp_path: Path):
    # given: 4 orgs of 8 funded members, an app whose pool holds at most 6 connections
    teams = build_teams(4, 8)
    calls = mixed_calls(teams, 330)
    environment = app_environment(
        upstream,
        DB_POOL_MAX_SIZE="6",
        DB_POOL_TIMEOUT="60",
        LLM_GATEWAY_DB_THREADS="3",
        LLM_GATEWAY_DB_POOL_SIZE="2",
    )
    with served_app(tmp_path, **environment) as app, ConnectionWatch() as watch:
        # when: 330 requests leave at once
        started = time.monotonic()
        outcomes = fire(app, calls)
        elapsed = time.monotonic() - started
        after = app_connections()

    # then: every request succeeded — no 5xx, no refusal
    statuses = Counter((o.call.name, o.status) for o in outcomes)
    failures = [(o.call.name, o.status, o.body[:300]) for o in outcomes if o.status not in (200, 201)]
    assert not failures, (failures[:5], statuses, app.log_text()[-3000:])
    assert {o.call.name for o in outcomes} >= {
        "charge",
        "gateway",
        "gateway stream",
        "transfer",
        "csv export",
    }
    # the app never held more than its pools (6 + the gateway's 2), and an operator could always connect
    assert 0 < watch.peak <= 8, watch.peak
    assert watch.samples >= 5 and watch.refused == [], (watch.samples, watch.refused[:3])
    assert after <= 8
    # every charge and gateway call is in the ledger exactly once, and the ledger adds up
    charges = [o for o in outcomes if o.call.name == "charge"]
    gateway_calls = [o for o in outcomes if o.call.name.startswith("gateway")]
    assert CreditUsageAttribution.objects.filter(request_id__startswith="load-").count() == len(charges)
    assert CreditUsageAttribution.objects.filter(service_name=MODEL).count() == len(charges) + len(
        gateway_calls
    )
    assert_ledger_clean()
    print(f"330 concurrent mixed requests in {elapsed:.1f} s, peak {watch.peak} app connections")


def test_a_pool_smaller_than_the_load_answers_database_busy_and_a_retry_is_charged_once(
    transactional_db, upstream, tmp_path: Path
):
    # given: a pool of 2 connections that makes a request wait at most 0.2 s for one
    teams = build_teams(2, 5)
    calls = [c for c in mixed_calls(teams, 600) if c.name in ("charge", "pool", "allocations")][:300]
    environment = app_environment(upstream, DB_POOL_MAX_SIZE="2", DB_POOL_TIMEOUT="0.2")
    with served_app(tmp_path, **environment) as app, ConnectionWatch() as watch:
        # when: 300 requests leave at once
        outcomes = fire(app, calls)
        busy = [o for o in outcomes if o.status == 503]
        # and every refused call is retried, with its request_id, until it goes through
        retried = [o.call for o in busy]
        for _ in range(20):
            if not retried:
                break
            time.sleep(1)
            again = fire(app, retried)
            retried = [o.call for o in again if o.status == 503]
        assert not retried, "calls still refused after 20 retries"

    # then: the only failures were database_busy 503s in the error shape, with Retry-After
    assert busy, "the load never exhausted a pool of 2: the test proves nothing"
    assert {o.status for o in outcomes} <= {200, 201, 503}, Counter(o.status for o in outcomes)
    for outcome in busy:
        error = httpx.Response(503, content=outcome.body).json()["error"]
        assert error["code"] == "database_busy", error
        assert set(error) == {"code", "message", "details"}
        assert int(outcome.headers["Retry-After"]) >= 1
    assert "Traceback" not in app.log_text()
    assert watch.peak <= 2 and watch.refused == [], (watch.peak, watch.refused[:3])
    # each charge is in the ledger exactly once, retried or not
    charge_ids = {c.body["request_id"] for c in calls if c.name == "charge" and c.body}
    rows = Counter(
        CreditUsageAttribution.objects.filter(request_id__in=charge_ids).values_list("request_id", flat=True)
    )
    assert set(rows) == charge_ids and set(rows.values()) == {1}
    assert_ledger_clean()
