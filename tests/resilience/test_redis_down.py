"""Redis (the shared cache: rate limits, plan quotas) stopped, hung and started again under the
served app, and in the middle of the one lookup cache the webhooks and OIDC use.

The app keeps serving: rate limits are counted per process while the cache is down, plan quotas
admit calls uncounted (the ledger, in PostgreSQL, still holds and charges each call), and
``Idempotency-Key`` — kept in PostgreSQL — still moves money once. Never a 500, never a wait of
seconds; once Redis answers again the shared limits apply again, with no restart.
"""

import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis

from billing.models import CreditUsageAttribution, Plan, UserCreditAllocation
from billing.services.subscriptions import create_subscription
from organizations.models import User
from tests.factories import UserFactory
from tests.fake_upstream import running_upstream
from tests.helpers import mc
from tests.load.test_served_under_load import MODEL, Team, assert_ledger_clean, build_teams
from tests.redis_server import RedisServer
from tests.served import ServedApp, served_app

API = "/api/v1/org-billing"
READS_PER_MINUTE = 5
CALLS_PER_DAY = 3  # a plan of 30 calls a month allows 10 % of them a day


def subscribe(team: Team, *, monthly_calls: int) -> None:
    Plan.objects.create(
        plan_code="resilience", name="Resilience", monthly_price=1, monthly_api_calls=monthly_calls
    )
    ops = UserFactory(is_staff=True)
    create_subscription(org_id=team.org.id, plan_code="resilience", owner=ops, actor=ops)


class Client:
    """One member's reads and gateway calls and the admin's writes, each checked to finish fast
    (a dead cache must cost milliseconds) and never to be a 500."""

    def __init__(self, app: ServedApp, team: Team) -> None:
        self.app = app
        self.team = team
        self.member, self.member_key = team.members[0]
        self.http = httpx.Client(base_url=app.url, timeout=10)

    def _send(
        self,
        method: str,
        path: str,
        key: str,
        *,
        body: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        budget: float = 1.0,
    ) -> httpx.Response:
        started = time.monotonic()
        response = self.http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {key}", **(headers or {})}
        )
        took = time.monotonic() - started
        assert response.status_code < 500, (response.status_code, response.text, self.app.log_text()[-3000:])
        assert took < budget, (method, path, took)
        return response

    def read(self, budget: float = 1.0) -> httpx.Response:
        return self._send("GET", f"{API}/credits/{self.team.org.id}", self.member_key, budget=budget)

    def call_model(self, budget: float = 1.0) -> httpx.Response:
        body: dict[str, object] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 20,
        }
        return self._send("POST", "/api/v1/llm/chat/completions", self.member_key, body=body, budget=budget)

    def allocate(self, credits: int, idempotency_key: str) -> httpx.Response:
        return self._send(
            "POST",
            f"{API}/credits/{self.team.org.id}/allocate",
            self.team.admin_key,
            body={"user_id": self.member.username, "credits": credits},
            headers={"Idempotency-Key": idempotency_key},
        )

    def reads_until_limited(self) -> list[int]:
        return [self.read().status_code for _ in range(READS_PER_MINUTE + 1)]

    def calls_until_refused(self) -> list[int]:
        return [self.call_model().status_code for _ in range(CALLS_PER_DAY + 1)]


def _error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def _allocated(member: User) -> int:
    return UserCreditAllocation.objects.get(user=member, is_active=True).allocated_credits


def _shared_counters(server: RedisServer) -> list[bytes]:
    return sorted(redis.Redis.from_url(server.url(1)).keys("*"))


@pytest.mark.django_db(transaction=True)
def test_with_redis_stopped_or_hung_the_app_serves_and_its_limits_resume_when_redis_returns(
    redis_server: RedisServer, tmp_path: Path
):
    # given: a member whose org's plan allows 3 gateway calls a day, 5 reads a minute each, an
    # app whose cache is the real Redis, retried 1 s after a failure
    (team,) = build_teams(1, 1)
    subscribe(team, monthly_calls=10 * CALLS_PER_DAY)
    with (
        running_upstream() as upstream,
        served_app(
            tmp_path,
            CACHE_URL=redis_server.url(1),
            CACHE_RETRY_AFTER_SECONDS="1",
            API_RATE_LIMIT_READ=f"{READS_PER_MINUTE}/minute",
            LLM_UPSTREAM_BASE_URL=upstream.base_url,
            LLM_UPSTREAM_API_KEY="sk-upstream",
        ) as app,
    ):
        client = Client(app, team)
        # Redis up: both limits are counted in it
        assert client.reads_until_limited() == [200] * READS_PER_MINUTE + [429]
        assert client.calls_until_refused() == [200] * CALLS_PER_DAY + [429]
        assert any(b"throttle_read" in key for key in _shared_counters(redis_server))

        # when: Redis is stopped
        redis_server.stop()

        # then: reads are served and limited per process, calls go through, charged
        assert client.reads_until_limited() == [200] * READS_PER_MINUTE + [429]
        limited = client.read()
        assert limited.status_code == 429 and _error_code(limited) == "rate_limited"
        assert int(limited.headers["Retry-After"]) > 0
        charged = client.call_model()
        assert charged.status_code == 200
        assert Decimal(charged.headers["X-Cost-Incurred"]) > 0
        # and a money-moving retry with the same Idempotency-Key moves the money once
        before = _allocated(client.member)
        first = client.allocate(7, idempotency_key=uuid.uuid4().hex)
        replay = client.allocate(7, idempotency_key=first.request.headers["Idempotency-Key"])
        assert first.status_code < 300 and replay.status_code == first.status_code
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert _allocated(client.member) == before + mc(7)

        # when: Redis is back but hung (accepts connections, never answers)
        redis_server.start()
        redis_server.freeze()
        time.sleep(1.1)  # past the retry interval: the next cache call waits on the socket
        # then: one short socket timeout, then the cache is skipped again: fast answers
        assert client.call_model(budget=1.5).status_code == 200
        assert client.read(budget=1.5).status_code == 429  # the per-process count still holds

        # when: Redis answers again (empty: it keeps nothing on disk)
        redis_server.thaw()
        time.sleep(1.1)
        # then: the same process counts in Redis again (its own count would refuse at once)
        assert client.reads_until_limited() == [200] * READS_PER_MINUTE + [429]
        assert client.calls_until_refused() == [200] * CALLS_PER_DAY + [429]
        assert any(b"llm-quota" in key for key in _shared_counters(redis_server))
        log = app.log_text()

    assert "rate limits: cache unavailable" in log
    assert "plan quotas: cache unavailable" in log
    assert "answers again" in log
    # every call that was answered 200 was charged once, and the ledger adds up
    assert CreditUsageAttribution.objects.filter(service_name=MODEL).count() == 2 * CALLS_PER_DAY + 2
    assert len(upstream.behaviour.requests) == 2 * CALLS_PER_DAY + 2
    assert_ledger_clean()
