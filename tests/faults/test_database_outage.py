"""PostgreSQL stopped and started again under the served app (issue 10).

During the outage every answer is a prompt 503 in the error shape; the app recovers by itself;
a client that retries each refused call with its ``request_id`` / ``Idempotency-Key`` is charged
exactly once; a completion the upstream produced is charged even when the database was down at
the moment of settling; no hold is left once holds expire.
"""

import asyncio
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from billing.ledger.reservations import expire_reservations
from billing.models import CreditReservation, CreditUsageAttribution, UserCreditAllocation
from billing.pricing import price_for
from tests.fake_upstream import FakeUpstream, running_upstream
from tests.faults.conftest import DATABASE_REFUSALS, Database, assert_error_shape, wait_until
from tests.helpers import mc
from tests.load.test_served_under_load import MODEL, Team, app_environment, assert_ledger_clean, build_teams
from tests.served import ServedApp, served_app

API = "/api/v1/org-billing"
CHAT = "/api/v1/llm/chat/completions"
POOL_TIMEOUT = 1.0
# A refusal may wait for a pooled connection (POOL_TIMEOUT) and then be rendered; the rest is
# this 2-core machine's scheduling under load.
REFUSAL_BOUND = POOL_TIMEOUT + 2.0
PROMPT = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def upstream() -> Any:
    with running_upstream() as up:
        yield up


def expire_every_hold() -> int:
    """Run the hold expiry as if the reservation TTL had passed."""
    later = timezone.now() + timedelta(seconds=settings.CREDIT_RESERVATION_TTL_SECONDS + 1)
    return expire_reservations(now=later)


def cost_of(*, prompt_tokens: int, completion_tokens: int) -> int:
    return price_for(MODEL).token_cost(input_tokens=prompt_tokens, output_tokens=completion_tokens)


# --- a completion answered while the database is down -------------------------------------------


def test_a_completion_answered_while_the_database_is_down_is_charged_once_it_is_back(
    database: Database, upstream: FakeUpstream, tmp_path: Path
):
    # given: a member, and an upstream that takes 2 s to answer (the window to stop PostgreSQL)
    team = build_teams(1, 1)[0]
    user, key = team.members[0]
    upstream.behaviour.latency = 2.0
    environment = app_environment(upstream, DB_POOL_TIMEOUT=str(POOL_TIMEOUT))
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": MODEL, "messages": PROMPT, "max_tokens": 50}
    answers: dict[str, httpx.Response] = {}

    def call(name: str, payload: dict[str, Any]) -> None:
        with httpx.Client(timeout=30) as client:
            response = client.post(f"{app.url}{CHAT}", json=payload, headers=headers)
            answers[name] = response

    with served_app(tmp_path, **environment) as app:
        callers = [
            threading.Thread(target=call, args=("json", body)),
            threading.Thread(target=call, args=("stream", {**body, "stream": True})),
        ]
        for caller in callers:
            caller.start()
        # when: both calls are held and upstream, PostgreSQL stops until they have been answered
        wait_until(lambda: len(upstream.behaviour.requests) == 2, timeout=20, what="both calls forwarded")
        database.stop()
        assert answers == {}, "answered before PostgreSQL stopped: the test proves nothing"
        for caller in callers:
            caller.join(timeout=30)
        database.start()
        connection.close()

        # then: the client got its completion, told the cost is known but not yet charged
        json_answer, stream_answer = answers["json"], answers["stream"]
        expected = cost_of(prompt_tokens=2, completion_tokens=20)
        assert json_answer.status_code == 200, json_answer.text
        assert json_answer.json()["choices"][0]["message"]["content"]
        assert json_answer.headers["X-Settlement"] == "pending"
        assert json_answer.headers["X-Cost-Incurred"] == f"{expected / 1000:.3f}"
        assert stream_answer.status_code == 200
        assert "settlement=pending" in stream_answer.text and stream_answer.text.endswith("data: [DONE]\n\n")
        # and, with PostgreSQL back and no restart of the app, both calls are charged by themselves
        requests = {json_answer.headers["X-Request-Id"], stream_answer.headers["X-Request-Id"]}
        wait_until(
            lambda: CreditUsageAttribution.objects.filter(request_id__in=requests).count() == 2,
            timeout=30,
            what=f"both calls charged:\n{app.log_text()[-3000:]}",
        )
        assert app.process.poll() is None
    rows = CreditUsageAttribution.objects.filter(request_id__in=requests)
    assert sorted(rows.values_list("credits_used", flat=True)) == [expected, expected]
    assert set(CreditReservation.objects.values_list("status", flat=True)) == {"settled"}
    assert expire_every_hold() == 0
    assert UserCreditAllocation.objects.get(user=user).used_credits == 2 * expected
    assert_ledger_clean()


# --- an outage under traffic -----------------------------------------------------------------


@dataclass
class Attempt:
    kind: str
    status: int | None
    elapsed: float
    at: float
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Traffic:
    """Clients that retry each refused call until it succeeds, and what they saw."""

    app: ServedApp
    attempts: list[Attempt] = field(default_factory=list)
    charges: list[str] = field(default_factory=list)  # request ids charged
    allocations: Counter[int] = field(default_factory=Counter)  # user pk → credits allocated
    gateway_successes: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _once(self, client: httpx.AsyncClient, kind: str, request: httpx.Request) -> Attempt:
        started = time.monotonic()
        try:
            response = await client.send(request, stream=True)
            content = await response.aread()
            await response.aclose()
        except httpx.HTTPError as exc:
            return Attempt(kind, None, time.monotonic() - started, started, error=repr(exc))
        return Attempt(
            kind, response.status_code, time.monotonic() - started, started, content, dict(response.headers)
        )

    async def _until_done(self, client: httpx.AsyncClient, kind: str, request: httpx.Request) -> Attempt:
        """The same request (same request id / Idempotency-Key) until it is not refused."""
        for _ in range(200):
            attempt = await self._once(client, kind, request)
            self.attempts.append(attempt)
            if attempt.status is not None and attempt.status < 500:
                return attempt
            retry_after = float(attempt.headers.get("retry-after", "1"))
            await asyncio.sleep(min(retry_after, 0.3))
        raise AssertionError(f"{kind} still refused after 200 tries")

    async def member(self, team: Team, index: int, kind: str) -> None:
        """One member doing ``kind`` over and over (so every kind is in flight at any moment)."""
        user, key = team.members[index]
        bearer = {"Authorization": f"Bearer {key}"}
        chat = {"model": MODEL, "messages": PROMPT, "max_tokens": 50}
        async with httpx.AsyncClient(base_url=self.app.url, timeout=30) as client:
            while not self.stop.is_set():
                if kind == "charge":
                    request_id = f"fault-{uuid.uuid4().hex}"
                    charge = {"user_id": user.username, "org_id": team.org.id, "model": MODEL,
                              "input_tokens": 100, "output_tokens": 20, "request_id": request_id}  # fmt: skip
                    request = client.build_request(
                        "POST", f"{API}/charges", json=charge,
                        headers={"Authorization": f"Bearer {team.service_key}"},
                    )  # fmt: skip
                elif kind == "allocate":
                    admin = {"Authorization": f"Bearer {team.admin_key}", "Idempotency-Key": uuid.uuid4().hex}
                    request = client.build_request(
                        "POST", f"{API}/credits/{team.org.id}/allocate",
                        json={"user_id": user.username, "credits": 1}, headers=admin,
                    )  # fmt: skip
                else:
                    payload = {**chat, "stream": kind == "gateway stream"}
                    request = client.build_request("POST", CHAT, json=payload, headers=bearer)
                done = await self._until_done(client, kind, request)
                assert done.status in (200, 201), (kind, done.status, done.body[:300])
                if kind == "charge":
                    self.charges.append(request_id)
                elif kind == "allocate":
                    self.allocations[user.pk] += mc(1)
                else:
                    self.gateway_successes += 1
                await asyncio.sleep(0.05)


async def _run_outage(traffic: Traffic, teams: list[Team], database: Database) -> tuple[float, float]:
    kinds = ("charge", "gateway", "gateway stream", "allocate")
    members = [
        asyncio.create_task(traffic.member(team, index, kind=kinds[index % len(kinds)]))
        for team in teams
        for index in range(len(team.members))
    ]
    await asyncio.sleep(1.5)
    await asyncio.to_thread(database.stop)
    down_at = time.monotonic()
    await asyncio.sleep(2.5)
    await asyncio.to_thread(database.start)
    up_at = time.monotonic()
    await asyncio.sleep(2.0)
    traffic.stop.set()
    await asyncio.gather(*members)
    return down_at, up_at


def test_a_database_outage_answers_prompt_503s_and_retried_calls_are_charged_exactly_once(
    database: Database, upstream: FakeUpstream, tmp_path: Path
):
    # given: 2 orgs of 4 funded members, each of whom charges, calls the gateway (JSON and
    # streamed) and is allocated a credit, over and over, retrying whatever is refused
    teams = build_teams(2, 4)
    before = {a.user_id: a.allocated_credits for a in UserCreditAllocation.objects.all()}
    upstream.behaviour.latency = 0.05
    environment = app_environment(upstream, DB_POOL_TIMEOUT=str(POOL_TIMEOUT), DB_POOL_MAX_SIZE="6")
    with served_app(tmp_path, **environment) as app:
        traffic = Traffic(app)
        # when: PostgreSQL stops for 2.5 s in the middle of it
        down_at, up_at = asyncio.run(_run_outage(traffic, teams, database))
        connection.close()
        pid_alive = app.process.poll() is None
        # the gateway's charges of completions answered during the outage land by themselves
        gateway_rows = CreditUsageAttribution.objects.filter(service_name=MODEL).exclude(
            request_id__startswith="fault-"
        )
        wait_until(
            lambda: gateway_rows.count() >= traffic.gateway_successes,
            timeout=30,
            what=f"{traffic.gateway_successes} gateway calls charged:\n{app.log_text()[-3000:]}",
        )

    # then: no connection was reset and nothing hung; every refusal was a prompt 503 in the
    # error shape with Retry-After, and there were refusals (the outage hit the traffic)
    assert pid_alive
    assert [a.error for a in traffic.attempts if a.error] == []
    refused = [a for a in traffic.attempts if a.status != 200 and a.status != 201]
    assert refused, "the outage refused nothing: the test proves nothing"
    for attempt in refused:
        assert_error_shape(httpx.Response(attempt.status or 0, content=attempt.body), 503, DATABASE_REFUSALS)
        assert int(attempt.headers["retry-after"]) >= 1
        assert attempt.elapsed <= REFUSAL_BOUND, (attempt.kind, attempt.elapsed, attempt.body[:200])
    assert {a.kind for a in refused} == {"charge", "allocate", "gateway", "gateway stream"}
    # the app recovered by itself: refusals stop soon after PostgreSQL is back
    last_refusal = max(a.at + a.elapsed for a in refused)
    assert last_refusal - up_at < 10, last_refusal - up_at
    assert any(a.at > down_at and a.status in (200, 201) for a in traffic.attempts)
    # every charge is in the ledger exactly once, every allocation applied once
    rows = Counter(
        CreditUsageAttribution.objects.filter(request_id__startswith="fault-").values_list(
            "request_id", flat=True
        )
    )
    assert rows == Counter(traffic.charges)
    for allocation in UserCreditAllocation.objects.all():
        assert (
            allocation.allocated_credits
            == before[allocation.user_id] + traffic.allocations[allocation.user_id]
        )
    # every completion the clients received is charged once (no free call, no double charge)
    assert gateway_rows.count() == traffic.gateway_successes
    # holds of calls refused after their hold was taken go when holds expire; none is left
    expire_every_hold()
    assert_ledger_clean()
    print(
        f"{len(traffic.attempts)} requests, {len(refused)} refused during the outage "
        f"(slowest refusal {max(a.elapsed for a in refused):.2f} s), "
        f"{traffic.gateway_successes} gateway calls, {len(traffic.charges)} charges"
    )
