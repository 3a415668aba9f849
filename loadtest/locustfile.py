"""Realistic mixed traffic for ``make loadtest`` (Locust; runs from ``.venv-load``, never the app's venv).

Every Locust user is one person prepared by ``manage.py prepare_loadtest``, with their own API
key (``LOADTEST_KEYS_FILE``), so the per-user rate limits apply as they would in production:

- **members** (most users) read their pool, their usage and their dashboard, and call the LLM
  gateway (non-streaming and streaming) against the server's upstream;
- **admins** (one per 10 seats) list allocations, open the org dashboard and usage analytics,
  export CSV, and now and then allocate or transfer a credit (``Idempotency-Key``);
- **gateway services** (one per org) report calls made elsewhere: ``POST /charges`` with a
  ``charge``-scoped key and a unique ``request_id``.

Think times keep each person far below the limits (GET 100/min, writes 20/min); a client-side
budget also waits rather than exceed 90 % of them, as a well-behaved client does. Any 4xx/5xx,
429 included, or a malformed answer is a failure, tallied by endpoint, status and error code
into ``LOADTEST_RESULTS_FILE`` for the report.

Knobs (environment): ``LOADTEST_THINK_SCALE`` (multiplies think times, 1), ``LOADTEST_GATEWAY``
(``on``/``off``), ``LOADTEST_EVERY_TASK_FIRST=1`` (each user runs each of its tasks once first:
the smoke test), ``LOADTEST_READ_LIMIT`` / ``LOADTEST_WRITE_LIMIT`` (the server's per-minute
limits, 100 / 20).
"""

import json
import os
import random
import time
import uuid
from collections import Counter, deque
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.exception import StopUser

API = "/api/v1/org-billing"
LLM = "/api/v1/llm/chat/completions"
KEYS_FILE = os.environ.get("LOADTEST_KEYS_FILE", ".pg/loadtest-keys.json")
RESULTS_FILE = os.environ.get("LOADTEST_RESULTS_FILE", "")
THINK = float(os.environ.get("LOADTEST_THINK_SCALE", "1"))
GATEWAY = os.environ.get("LOADTEST_GATEWAY", "on") == "on"
EVERY_TASK_FIRST = os.environ.get("LOADTEST_EVERY_TASK_FIRST") == "1"
KEEPALIVE_EXPIRY = 4.0  # seconds; below the server's keep-alive timeout (uvicorn's default: 5)
LIMITS = {
    "read": int(int(os.environ.get("LOADTEST_READ_LIMIT", "100")) * 0.9),
    "write": int(int(os.environ.get("LOADTEST_WRITE_LIMIT", "20")) * 0.9),
}


def _load_people() -> dict[str, Any]:
    try:
        with open(KEYS_FILE) as stream:
            return dict(json.load(stream))
    except FileNotFoundError:
        raise SystemExit(
            f"{KEYS_FILE} not found: run `manage.py prepare_loadtest` first (make loadtest does)"
        ) from None


PEOPLE = _load_people()
MODEL = str(PEOPLE["model"])
MEMBERS_OF = {org["org_id"]: list(org["members"]) for org in PEOPLE["orgs"]}
UNCLAIMED = {
    role: [person for person in PEOPLE["users"] if person["role"] == role]
    for role in ("member", "admin", "service")
}
SENTENCES = (
    "Summarise the quarterly report and list the three largest risks with a mitigation for each.",
    "Translate this paragraph into French, keeping the technical terms in English.",
    "Explain the stack trace below and suggest the most likely cause.",
    "Write a unit test for the function that parses invoices and rounds amounts to cents.",
    "Here is the customer's message; draft a short and polite answer.",
)

# What the report reads: failures by (endpoint, status, error code), and the client's waits.
FAILURES: Counter[tuple[str, int, str]] = Counter()
TALLY: Counter[str] = Counter()
ENVIRONMENT: list[Any] = []


@events.init.add_listener
def _keep_environment(environment: Any, **_: Any) -> None:
    ENVIRONMENT.append(environment)


def _entry(entry: Any) -> dict[str, Any]:
    return {
        "name": entry.name,
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "rps": entry.total_rps,
        "p50": entry.get_response_time_percentile(0.5),
        "p95": entry.get_response_time_percentile(0.95),
        "p99": entry.get_response_time_percentile(0.99),
        "max": entry.max_response_time,
    }


@events.quit.add_listener
def _write_results(exit_code: int, **_: Any) -> None:
    """After every user has stopped, so the figures are final (Locust's CSV may miss the last
    second)."""
    if not RESULTS_FILE:
        return
    stats = ENVIRONMENT[0].runner.stats
    with open(RESULTS_FILE, "w") as stream:
        json.dump(
            {
                "endpoints": [_entry(entry) for entry in stats.entries.values() if entry.num_requests],
                "total": _entry(stats.total),
                "failures": [
                    {"name": name, "status": status, "code": code, "count": count}
                    for (name, status, code), count in sorted(FAILURES.items())
                ],
                "rate_limit_waits": TALLY["rate_limit_waits"],
                "unprepared_users": TALLY["unprepared_users"],
                "gateway": GATEWAY,
            },
            stream,
            indent=1,
        )


def error_code(response: Any) -> str:
    """The API's ``error.code``, else what went wrong on the wire."""
    if not response.status_code:
        error = getattr(response, "error", None)
        return type(error).__name__ if error is not None else "connection_error"
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "unparsed_body"


class RateBudget:
    """Waits rather than send more than the server allows per user and minute."""

    def __init__(self) -> None:
        self.sent: dict[str, deque[float]] = {kind: deque() for kind in LIMITS}

    def take(self, kind: str) -> None:
        window = self.sent[kind]
        now = time.monotonic()
        while window and now - window[0] >= 60:
            window.popleft()
        if len(window) >= LIMITS[kind]:
            TALLY["rate_limit_waits"] += 1
            time.sleep(60.05 - (now - window[0]))  # gevent-patched: only this user waits
        window.append(time.monotonic())


class Person(FastHttpUser):
    abstract = True
    role = ""
    # A GET sent on a kept-alive connection the server has just closed is sent again once, as
    # HTTP libraries do; a POST is never retried (it may have been processed).
    max_retries = 1

    def on_start(self) -> None:
        if not UNCLAIMED[self.role]:
            TALLY["unprepared_users"] += 1
            raise StopUser()
        person = UNCLAIMED[self.role].pop(0)
        self.user_id: str = person["user_id"]
        self.org_id: str = person["org_id"]
        self.client.auth_header = f"Bearer {person['key']}"
        self.budget = RateBudget()
        self.last_request_at = time.monotonic()
        if EVERY_TASK_FIRST:
            for each in dict.fromkeys(self.tasks):
                each(self)

    def call(
        self,
        method: str,
        path: str,
        *,
        name: str,
        expect: int = 200,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        check: Any = None,
        throttled: bool = True,
    ) -> None:
        """One request, counted as a failure unless it answers ``expect`` and ``check`` (a
        function of the response returning a problem or None) finds nothing wrong.
        ``throttled``: the endpoint is under the per-user limits (the gateway and the charge
        endpoint are not)."""
        if throttled:
            self.budget.take("read" if method == "GET" else "write")
        self.expire_idle_connections()
        with self.client.request(
            method, path, name=name, json=body, headers=headers, catch_response=True
        ) as response:
            problem = None
            if response.status_code != expect:
                problem = error_code(response)
            elif check is not None:
                problem = check(response)
            self.judge(response, name, problem)

    def expire_idle_connections(self) -> None:
        """Drop connections idle longer than ``KEEPALIVE_EXPIRY``, as httpx does (5 s): the
        server closes them after its own keep-alive timeout (uvicorn: 5 s), and a POST sent
        on one in that instant fails without having reached the application."""
        if time.monotonic() - self.last_request_at > KEEPALIVE_EXPIRY:
            self.client.client.clientpool.close()

    def judge(self, response: Any, name: str, problem: str | None) -> None:
        """Record the answer: a success, or a failure tallied by endpoint, status and code."""
        self.last_request_at = time.monotonic()
        if problem is None:
            response.success()
            return
        FAILURES[(name, int(response.status_code or 0), problem)] += 1
        response.failure(f"HTTP {response.status_code} {problem}")


def _csv(response: Any) -> str | None:
    content_type = response.headers.get("Content-Type", "") if response.headers else ""
    return None if content_type.startswith("text/csv") else "not_csv"


def _cost(response: Any) -> str | None:
    return None if response.headers and response.headers.get("X-Cost-Incurred") else "no_cost_header"


def _prompt() -> str:
    return " ".join(random.choices(SENTENCES, k=random.randint(2, 30)))


class MemberUser(Person):
    """A member: reads their credits and usage, and calls the LLM gateway."""

    role = "member"
    weight = 1  # everyone who is not an admin or a gateway service
    wait_time = between(1 * THINK, 5 * THINK)

    @task(5)
    def pool(self) -> None:
        self.call("GET", f"{API}/credits/{self.org_id}", name=f"GET {API}/credits/{{org}}")

    @task(3)
    def usage(self) -> None:
        self.call("GET", f"{API}/credits/{self.org_id}/usage", name=f"GET {API}/credits/{{org}}/usage")

    @task(3)
    def dashboard(self) -> None:
        self.call("GET", f"{API}/billing/user", name=f"GET {API}/billing/user")

    @task(3)
    def chat(self) -> None:
        if not GATEWAY:
            return self.pool()
        body = {"model": MODEL, "messages": [{"role": "user", "content": _prompt()}], "max_tokens": 64}
        self.call("POST", LLM, name=f"POST {LLM}", body=body, check=_cost, throttled=False)

    @task(2)
    def chat_stream(self) -> None:
        """Timed to the last byte (Locust alone would stop the clock at the headers)."""
        if not GATEWAY:
            return self.pool()
        name = f"POST {LLM} (stream)"
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": _prompt()}],
            "max_tokens": 64,
            "stream": True,
        }
        self.expire_idle_connections()
        started = time.perf_counter()
        with self.client.request(
            "POST", LLM, name=name, json=body, stream=True, catch_response=True
        ) as response:
            if response.status_code != 200:
                return self.judge(response, name, error_code(response))
            received = b""
            try:
                for chunk in response.iter_content(4096, decode_content=False):
                    received += chunk
            except Exception as broken:  # the stream was cut: that is the failure to report
                return self.judge(response, name, f"stream_broken:{type(broken).__name__}")
            response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            response.request_meta["response_length"] = len(received)
            self.judge(response, name, None if b"data: [DONE]" in received else "stream_incomplete")


class AdminUser(Person):
    """An org admin: allocations, dashboard, analytics and exports; a few writes."""

    role = "admin"
    fixed_count = len(UNCLAIMED["admin"])
    wait_time = between(2 * THINK, 8 * THINK)

    @task(4)
    def allocations(self) -> None:
        self.call(
            "GET", f"{API}/credits/{self.org_id}/allocations", name=f"GET {API}/credits/{{org}}/allocations"
        )

    @task(3)
    def org_dashboard(self) -> None:
        self.call("GET", f"{API}/billing/org/{self.org_id}", name=f"GET {API}/billing/org/{{org}}")

    @task(2)
    def usage_by_user(self) -> None:
        self.call("GET", f"{API}/usage/{self.org_id}/by-user", name=f"GET {API}/usage/{{org}}/by-user")

    @task(2)
    def usage_by_model(self) -> None:
        self.call(
            "GET",
            f"{API}/usage/{self.org_id}/by-model?granularity=week",
            name=f"GET {API}/usage/{{org}}/by-model",
        )

    @task(1)
    def export_csv(self) -> None:
        self.call(
            "GET",
            f"{API}/usage/{self.org_id}/by-model?format=csv",
            name=f"GET {API}/usage/{{org}}/by-model?format=csv",
            check=_csv,
        )

    @task(1)
    def allocate(self) -> None:
        self.call(
            "POST",
            f"{API}/credits/{self.org_id}/allocate",
            name=f"POST {API}/credits/{{org}}/allocate",
            body={"user_id": random.choice(MEMBERS_OF[self.org_id]), "credits": 1.0},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )

    @task(1)
    def transfer(self) -> None:
        members = MEMBERS_OF[self.org_id]
        if len(members) < 2:
            return self.allocate()
        giver, taker = random.sample(members, 2)
        self.call(
            "POST",
            f"{API}/credits/{self.org_id}/transfer",
            name=f"POST {API}/credits/{{org}}/transfer",
            body={"from_user_id": giver, "to_user_id": taker, "credits": 0.5},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )


class ServiceUser(Person):
    """An external gateway reporting the calls it served (charge-scoped service key)."""

    role = "service"
    fixed_count = len(UNCLAIMED["service"])
    wait_time = between(0.5 * THINK, 2 * THINK)

    @task
    def charge(self) -> None:
        self.call(
            "POST",
            f"{API}/charges",
            name=f"POST {API}/charges",
            expect=201,
            throttled=False,
            body={
                "user_id": random.choice(MEMBERS_OF[self.org_id]),
                "org_id": self.org_id,
                "model": MODEL,
                "input_tokens": random.randint(200, 3000),
                "output_tokens": random.randint(20, 800),
                "request_id": f"loadtest-{uuid.uuid4().hex}",
            },
        )
