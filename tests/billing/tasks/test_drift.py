"""The reconciliation task alerts operations on drift: ERROR log, audit event, e-mail."""

import logging

import pytest
from django.core import mail
from django.db import connection

from billing.models import AuditEvent
from billing.tasks import reconcile_credits
from tests.helpers import mc

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(settings):
    settings.ADMINS = [("Ops", "ops-lead@example.test")]
    settings.OPS_ALERT_EMAILS = ["oncall@example.test"]


def corrupt_allocation(allocation_id: int, used: int) -> None:
    # A bug elsewhere, simulated with raw SQL: used_credits no longer matches the ledger.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE user_credit_allocations SET used_credits = %s WHERE id = %s", [used, allocation_id]
        )


def test_a_drift_is_logged_audited_and_mailed_to_operations(make_funded_member, ops, run_on_commit, caplog):
    org, _user, allocation = make_funded_member(pool=100, allocation=50)
    corrupt_allocation(allocation.pk, mc(5))

    with caplog.at_level(logging.ERROR, logger="billing.services.alerts"):
        result = run_on_commit(lambda: reconcile_credits.delay().get())

    assert result["drifts"] >= 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        "allocation_used_equals_sum_of_attribution" in m and f"allocation #{allocation.pk}" in m
        for m in errors
    ), errors
    event = AuditEvent.objects.get(action="ledger.drift_detected")
    assert event.actor_label == "task:reconcile_credits"
    assert event.metadata["count"] == result["drifts"]
    assert org.id in event.metadata["orgs"]
    assert any(
        d["check"] == "allocation_used_equals_sum_of_attribution" and d["org_id"] == org.id
        for d in event.metadata["drifts"]
    ), event.metadata
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["oncall@example.test", "ops-lead@example.test"]
    assert message.subject.startswith("[orgbilling] Ledger drift:")
    assert f"allocation #{allocation.pk}" in message.body


def test_no_drift_means_no_event_and_no_mail(make_funded_member, ops, run_on_commit):
    make_funded_member(pool=100, allocation=50)
    assert run_on_commit(lambda: reconcile_credits.delay().get()) == {"drifts": 0}
    assert not AuditEvent.objects.filter(action="ledger.drift_detected").exists()
    assert mail.outbox == []


def test_a_drift_without_an_ops_address_is_still_logged_and_audited(make_funded_member, settings, caplog):
    settings.ADMINS = []
    settings.OPS_ALERT_EMAILS = []
    _org, _user, allocation = make_funded_member(pool=100, allocation=50)
    corrupt_allocation(allocation.pk, mc(1))
    with caplog.at_level(logging.ERROR, logger="billing.services.alerts"):
        reconcile_credits.delay().get()
    assert AuditEvent.objects.filter(action="ledger.drift_detected").exists()
    assert any("no ops address is configured" in r.getMessage() for r in caplog.records)
