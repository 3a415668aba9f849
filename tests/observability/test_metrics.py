"""/metrics serves every series with real values after real requests: request latency by URL
pattern, charges and refused charges by code, holds, the last reconciliation's drift count,
the database pool, webhook failures; counters add up across processes in multiprocess mode."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, connections

from billing.models import CreditReservation
from billing.services import expire_reservations, reserve_credits
from billing.tasks import reconcile_credits
from organizations.services import add_member
from tests.billing.gateway.conftest import api_key
from tests.factories import UserFactory
from tests.fakes.stripe import WEBHOOK_SECRET, sign
from tests.helpers import mc
from tests.observability.conftest import Scrape

ROOT = Path(__file__).resolve().parents[2]
LATENCY = "orgbilling_http_request_duration_seconds_count"
REFUSALS = "orgbilling_charge_refusals_total"


@pytest.mark.django_db
def test_request_latency_is_counted_by_url_pattern_never_by_raw_path(client, scrape):
    route = "api/v1/org-billing/credits/<str:org_id>"
    before = scrape()

    client.get("/api/v1/org-billing/credits/raw-org-id-1")
    client.get("/api/v1/org-billing/credits/raw-org-id-2")
    client.get("/no/such/path/raw-3")
    client.generic("BREW", "/healthz")
    after = scrape()

    labels = {"route": route, "method": "GET", "status_class": "4xx"}
    assert after.value(LATENCY, **labels) - before.value(LATENCY, **labels) == 2
    assert after.value(LATENCY, route="<unmatched>", method="GET", status_class="4xx") >= 1
    assert after.value(LATENCY, route="healthz", method="other", status_class="4xx") >= 1
    assert "raw-org-id" not in after.text and "raw-3" not in after.text
    assert after.find("orgbilling_http_request_duration_seconds_bucket", route=route, le="+Inf")


@pytest.fixture
def charge_client(api_client, make_funded_member, model_price):
    """A service key allowed to report charges for an org with one funded member (10 credits)."""
    org, member, _ = make_funded_member(pool=100, allocation=10)
    admin = UserFactory()
    add_member(org_id=org.id, user=admin, role="admin", actor_label="test")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key(admin, scopes=['charge'])}")
    return api_client, org, member


def test_charges_and_refused_charges_are_counted_and_the_refusal_logged(charge_client, scrape, json_logs):
    client, org, member = charge_client
    before = scrape()

    charged = client.post(
        "/api/v1/org-billing/charges",
        {"user_id": member.username, "org_id": org.id, "credits": 2.5, "request_id": "m-ok-1"},
        format="json",
    )
    refused = client.post(
        "/api/v1/org-billing/charges",
        {"user_id": member.username, "org_id": org.id, "credits": 50, "request_id": "m-no-1"},
        format="json",
        HTTP_X_REQUEST_ID="refused-call-1",
    )
    after = scrape()

    assert charged.status_code == 201 and refused.status_code == 402
    delta = lambda name, **labels: after.value(name, **labels) - before.value(name, **labels)  # noqa: E731
    assert delta("orgbilling_charges_total", operation="deduction") == 1
    assert delta("orgbilling_credits_charged_total", operation="deduction") == pytest.approx(2.5)
    assert delta(REFUSALS, operation="deduction", code="insufficient_credits") == 1
    [line] = json_logs.events("credit deduction failed")
    assert line["level"] == "warning"
    assert line["logger"] == "billing.charges"
    assert line["code"] == "insufficient_credits"
    assert (line["org_id"], line["user_id"], line["amount_credits"]) == (org.id, member.username, "50.000")
    assert line["request_id"] == "refused-call-1"


@pytest.mark.django_db
def test_a_hold_refused_for_lack_of_an_allocation_is_counted(make_funded_member, scrape, json_logs):
    from billing.errors import NoActiveAllocation

    org, _, _ = make_funded_member()
    stranger = UserFactory()
    add_member(org_id=org.id, user=stranger, actor_label="test")
    before = scrape()

    with pytest.raises(NoActiveAllocation):
        reserve_credits(user=stranger, org_id=org.id, amount=mc(1), request_id="no-alloc-1")

    after = scrape()
    labels = {"operation": "hold", "code": "no_active_allocation"}
    assert after.value(REFUSALS, **labels) - before.value(REFUSALS, **labels) == 1
    [line] = json_logs.events("credit deduction failed")
    assert (line["org_id"], line["user_id"], line["amount_credits"]) == (org.id, stranger.username, "1.000")
    assert line["request_id"] is None  # not in a request


@pytest.mark.django_db
def test_holds_open_overdue_and_expired_are_read_from_the_database(make_funded_member, scrape):
    org, user, _ = make_funded_member(pool=100, allocation=50)
    reserve_credits(user=user, org_id=org.id, amount=mc(3), request_id="open-1")
    reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="stale-1", ttl_seconds=0)
    reserve_credits(user=user, org_id=org.id, amount=mc(1), request_id="stale-2", ttl_seconds=0)
    expire_reservations(limit=1)  # one of the stale holds is released by the expiry task

    scraped = scrape()

    assert CreditReservation.objects.filter(status="expired").count() == 1
    assert scraped.value("orgbilling_credit_holds", state="open") == 2
    assert scraped.value("orgbilling_credit_holds", state="overdue") == 1
    assert scraped.value("orgbilling_credit_holds", state="expired") == 1
    assert scraped.value("orgbilling_credit_holds_open_credits") in (4.0, 5.0)


def corrupt_allocation(allocation_id: int, used: int) -> None:
    # A bug elsewhere, simulated with raw SQL: used_credits no longer matches the ledger.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE user_credit_allocations SET used_credits = %s WHERE id = %s", [used, allocation_id]
        )


@pytest.mark.django_db
def test_the_last_reconciliations_drift_count_is_exposed(make_funded_member, scrape):
    _, _, allocation = make_funded_member(pool=100, allocation=50)
    assert scrape().find("orgbilling_reconciliation_drifts") == []  # never ran: no figure

    assert reconcile_credits.delay().get() == {"drifts": 0}
    assert scrape().value("orgbilling_reconciliation_drifts") == 0

    corrupt_allocation(allocation.pk, mc(5))
    drifts = reconcile_credits.delay().get()["drifts"]
    scraped = scrape()

    assert drifts >= 1
    assert scraped.value("orgbilling_reconciliation_drifts") == drifts
    assert scraped.value("orgbilling_reconciliation_last_run_timestamp_seconds") > 1.7e9


@pytest.mark.django_db(transaction=True)
def test_a_reconciliation_run_by_a_real_worker_is_seen_by_the_web_process(
    make_funded_member, celery_worker_process, client, settings
):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "t0ken", []
    _, _, allocation = make_funded_member(pool=100, allocation=50)
    corrupt_allocation(allocation.pk, mc(7))

    result = celery_worker_process.run("billing.tasks.reconcile_credits")

    scraped = Scrape(client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode())
    assert result["drifts"] >= 1
    assert scraped.value("orgbilling_reconciliation_drifts") == result["drifts"]


@pytest.mark.django_db
def test_without_a_pool_the_pool_gauges_say_so(scrape):
    assert connection.pool is None  # this suite runs without Django's connection pool

    assert scrape().value("orgbilling_db_pool_enabled", database="default") == 0


@pytest.mark.django_db
def test_with_a_pool_its_size_and_use_are_exposed(scrape):
    # given: the default database with Django's psycopg pool (min 1, max 3), one connection lent
    options = connections["default"].settings_dict["OPTIONS"]
    options["pool"] = {"min_size": 1, "max_size": 3, "timeout": 5}
    pool = connections["default"].pool
    try:
        assert pool is not None
        pool.open(wait=True)
        lent = pool.getconn()
        try:
            scraped = scrape()
        finally:
            pool.putconn(lent)
    finally:
        del options["pool"]
        connections["default"]._connection_pools.pop("default", None)
        pool.close()

    assert scraped.value("orgbilling_db_pool_enabled", database="default") == 1
    assert scraped.value("orgbilling_db_pool_max_size", database="default") == 3
    assert scraped.value("orgbilling_db_pool_size", database="default") >= 1
    assert scraped.value("orgbilling_db_pool_in_use", database="default") == 1
    assert scraped.value("orgbilling_db_pool_waiting", database="default") == 0


@pytest.mark.django_db
def test_a_webhook_whose_processing_fails_is_counted(client, settings, scrape):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = json.dumps({"id": "evt_metrics_1", "type": "checkout.session.completed", "data": {}})
    before = scrape()

    response = client.post(
        "/api/v1/webhooks/stripe",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign(body)},
    )

    assert response.status_code == 400
    labels = {"provider": "stripe", "reason": "validation_error"}
    assert (
        scrape().value("orgbilling_webhook_failures_total", **labels)
        - before.value("orgbilling_webhook_failures_total", **labels)
        == 1
    )


COUNT_ONE_REFUSAL = """
import django; django.setup()
from billing.errors import InsufficientCredits
from orgbilling.observability.charges import charge_refused
charge_refused(InsufficientCredits(), operation="deduction", org_id="o", user=None, amount=1000)
"""
RENDER = """
import django; django.setup()
from orgbilling.observability.metrics import render_metrics
print(render_metrics()[0].decode())
"""


def test_multiprocess_mode_adds_up_the_counters_of_every_process(tmp_path, db):
    from tests.served import run_database_url

    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "DATABASE_URL": run_database_url(),
    }
    for _ in range(2):  # two "workers", each counting one refusal, then gone
        ran = subprocess.run(
            [sys.executable, "-c", COUNT_ONE_REFUSAL],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr

    rendered = subprocess.run(
        [sys.executable, "-c", RENDER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert rendered.returncode == 0, rendered.stderr
    scraped = Scrape(rendered.stdout)
    assert scraped.value(REFUSALS, operation="deduction", code="insufficient_credits") == 2
    assert scraped.find("orgbilling_credit_holds", state="open") == [0.0]  # and the database figures
