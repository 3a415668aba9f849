"""Celery workers under faults, all real processes: Redis stopped under a running worker, and a
worker SIGKILLed in the middle of a task that moves credits or writes billing history.

A task is acknowledged only once it ran (``acks_late``), so a worker that dies mid-task leaves
its message unacknowledged and Redis hands it to another worker after the visibility timeout
(``CELERY_VISIBILITY_TIMEOUT_SECONDS``, a few seconds here). The task runs again from the
start; what the first run committed must not be applied a second time.
"""

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.utils import timezone
from werkzeug import Request, Response

from billing.models import (
    AuditEvent,
    CreditReservation,
    OrganizationCreditPool,
    OrgBillingHistory,
    UserCreditAllocation,
)
from billing.selectors.reconciliation import find_all_drifts
from billing.services import deduct_credits, reserve_credits
from organizations.models import Organization
from tests.celery_worker import Worker, WorkerClient, start_worker
from tests.factories import OrganizationFactory
from tests.fakes.lago import API_KEY, FakeLago
from tests.helpers import mc
from tests.redis_server import RedisServer
from tests.served import run_database_url

# Short enough for a test: a message a dead worker held is handed out again after 4 s.
FAST_REDELIVERY = {
    "CELERY_TASK_SOFT_TIME_LIMIT": "2",
    "CELERY_TASK_TIME_LIMIT": "3",
    "CELERY_VISIBILITY_TIMEOUT_SECONDS": "4",
}


@pytest.fixture
def workers(
    redis_server: RedisServer, tmp_path: Path, transactional_db: None
) -> Iterator[Callable[..., Worker]]:
    """Starts workers on the test's Redis (prefork, one child, as deployed); every one is
    stopped before the test's tables are flushed."""
    started: list[Worker] = []

    def start(*, pool: str = "prefork", **environment: str) -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        worker = start_worker(redis_server.url(), log, pool=pool, **environment)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()  # the test is over: no need to wait for a warm shutdown


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[WorkerClient]:
    client = WorkerClient(redis_server.url())
    yield client
    client.close()


def wait_for(condition: Callable[[], bool], what: str, worker: Worker, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}; worker log:\n{worker.log_text()}"
        time.sleep(0.05)


def _psycopg_url() -> str:
    return run_database_url().replace("postgres://", "postgresql://")


def worker_waits_on_a_lock() -> bool:
    with psycopg.connect(_psycopg_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'orgbilling-worker' AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


class RowLock:
    """A row held FOR UPDATE by another session (an admin's transaction, a slow request)."""

    def __init__(self, table: str, pk: int) -> None:
        self.conn = psycopg.connect(_psycopg_url())
        self.conn.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", [pk])

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


@pytest.fixture
def row_lock() -> Iterator[Callable[[str, int], RowLock]]:
    held: list[RowLock] = []

    def take(table: str, pk: int) -> RowLock:
        held.append(RowLock(table, pk))
        return held[-1]

    yield take
    for lock in held:
        lock.release()


def the_one_running(task_id: str, pair: list[Worker]) -> tuple[Worker, Worker]:
    """(the worker that received the task, the other one)."""
    received = [worker for worker in pair if f"[{task_id}] received" in worker.log_text()]
    assert len(received) == 1, [worker.log_text() for worker in pair]
    running = received[0]
    return running, next(worker for worker in pair if worker is not running)


def expired_allocations(make_funded_member: Callable[..., Any], count: int) -> tuple[Organization, list[int]]:
    """``count`` members of one org, each with 100 credits of which 10 are used, all past their
    expiry (as if the clock had moved on)."""
    org = OrganizationFactory()
    ids = []
    for n in range(count):
        _, user, allocation = make_funded_member(pool=1000 if n == 0 else 0, allocation=100, org=org)
        deduct_credits(user=user, org_id=org.id, amount=mc(10), request_id=f"use-{n}", service_name="m")
        ids.append(allocation.pk)
    UserCreditAllocation.objects.filter(pk__in=ids).update(expires_at=timezone.now() - timedelta(minutes=1))
    return org, ids


def assert_expired_once(org: Organization, ids: list[int]) -> None:
    for allocation in UserCreditAllocation.objects.filter(pk__in=ids):
        assert (allocation.is_active, allocation.allocated_credits) == (False, mc(10))
    expirations = AuditEvent.objects.filter(action="allocation.expired", org_id=org.id)
    assert sorted(int(e.target_id) for e in expirations) == sorted(ids)  # one event each
    pool = OrganizationCreditPool.objects.get(org=org)
    assert pool.allocated_credits == mc(10) * len(ids)  # each unused 90 came back once
    assert find_all_drifts() == []


# Redis stopped under a running worker ---------------------------------------------------------


def test_a_worker_outlives_a_redis_outage_and_runs_tasks_sent_once_redis_is_back(
    redis_server, workers, client, make_funded_member
):
    worker = workers(pool="solo")
    assert client.wait(client.send("billing.tasks.expire_allocations"))["expired"] == 0

    # when: Redis stops; an allocation expires meanwhile
    redis_server.stop()
    wait_for(lambda: "Connection to broker lost" in worker.log_text(), "the worker to notice", worker)
    org, ids = expired_allocations(make_funded_member, 1)
    assert worker.alive()

    # then: once Redis is back (empty), a task sent to it runs on the same worker
    redis_server.start()
    result = client.send("billing.tasks.expire_allocations")
    client.worker = worker
    assert client.wait(result, timeout=60)["expired"] == 1
    assert_expired_once(org, ids)


# A worker SIGKILLed mid-task ------------------------------------------------------------------


def test_expiry_killed_mid_run_is_redelivered_and_returns_each_allocations_credits_once(
    workers, client, make_funded_member, row_lock
):
    # given: three expired allocations; another session holds the second one's row; two workers
    org, ids = expired_allocations(make_funded_member, 3)
    lock = row_lock("user_credit_allocations", ids[1])
    pair = [workers(DB_LOCK_TIMEOUT_MS="30000", **FAST_REDELIVERY) for _ in range(2)]

    # when: the expiry has done the first allocation and waits for the second, its worker dies
    result = client.send("billing.tasks.expire_allocations")
    wait_for(worker_waits_on_a_lock, "the expiry to reach the locked allocation", pair[0])
    running, other = the_one_running(result.task_id, pair)
    running.kill()
    assert UserCreditAllocation.objects.filter(pk__in=ids, is_active=False).count() == 1
    lock.release()

    # then: the other worker gets the message again and finishes the job
    client.worker = other
    assert client.wait(result, timeout=30)["expired"] == 2
    assert_expired_once(org, ids)


def test_hold_expiry_refused_by_a_lock_timeout_is_retried_and_releases_each_hold_once(
    workers, client, make_funded_member, row_lock
):
    # given: two stale holds of 3 credits on one allocation; the second's row is locked
    org, user, allocation = make_funded_member(pool=100, allocation=50)
    holds = [
        reserve_credits(user=user, org_id=org.id, amount=mc(3), request_id=f"crashed-{n}", ttl_seconds=0)
        for n in range(2)
    ]
    lock = row_lock("credit_reservations", holds[1].reservation_id)
    worker = workers(DB_LOCK_TIMEOUT_MS="200", **FAST_REDELIVERY)
    client.worker = worker

    # when: the run releases the first hold and is refused the second's lock (lock_timeout: the
    # OperationalError behind a 503 database_busy), and the row is freed meanwhile
    result = client.send("billing.tasks.expire_reservations")
    wait_for(lambda: result.state == "RETRY", "the task to be retried", worker)
    assert CreditReservation.objects.get(pk=holds[0].reservation_id).status == "expired"
    lock.release()

    # then: the retry releases only what is left, and each hold's credits came back once
    assert client.wait(result, timeout=30) == {"expired": 1}
    statuses = CreditReservation.objects.filter(pk__in=[h.reservation_id for h in holds])
    assert set(statuses.values_list("status", flat=True)) == {"expired"}
    assert UserCreditAllocation.objects.get(pk=allocation.pk).reserved_credits == 0
    assert find_all_drifts() == []


def test_invoice_sync_killed_mid_page_is_redelivered_and_records_each_invoice_once(
    workers, client, fake_lago: FakeLago
):
    # given: a Lago customer with 5 invoices (3 pages of 2), two of them paid
    org = OrganizationFactory(lago_customer_id=str(uuid.uuid4()))
    fake_lago.invoices[org.id] = [
        fake_lago.invoice(org.id, number=f"INV-{n}", cents=1000 * n, payment_status=status)
        for n, status in enumerate(["succeeded", "pending", "succeeded", "pending", "failed"], start=1)
    ]
    # and Lago slow to answer page 2 (the first time)
    reached, answer = threading.Event(), threading.Event()

    def slow_page(request: Request) -> Response:
        reached.set()
        answer.wait(20)
        return fake_lago._invoices(request)

    fake_lago.server.expect_oneshot_request(
        "/api/v1/invoices",
        method="GET",
        query_string={"external_customer_id": org.id, "per_page": "2", "page": "2"},
    ).respond_with_handler(slow_page)
    lago = {"LAGO_API_URL": fake_lago.url, "LAGO_API_KEY": API_KEY, "LAGO_INVOICE_PAGE_SIZE": "2"}
    pair = [workers(**lago, **FAST_REDELIVERY) for _ in range(2)]

    # when: the worker dies while it waits for page 2 (page 1 is recorded)
    result = client.send("billing.payments.tasks.sync_lago_invoices", org_id=org.id)
    assert reached.wait(30), pair[0].log_text() + pair[1].log_text()
    running, other = the_one_running(result.task_id, pair)
    running.kill()
    answer.set()
    assert OrgBillingHistory.objects.filter(org=org, event_type="invoice").count() == 2

    # then: the sync runs again on the other worker and every invoice and payment is there once
    client.worker = other
    outcome = client.wait(result, timeout=30)
    assert (outcome["invoices_seen"], outcome["invoices_created"], outcome["failed_orgs"]) == (5, 3, [])
    rows = OrgBillingHistory.objects.filter(org=org)
    assert rows.filter(event_type="invoice").count() == 5
    assert sorted(rows.filter(event_type="payment").values_list("status", flat=True)) == [
        "failed",
        "succeeded",
        "succeeded",
    ]
    assert find_all_drifts() == []
