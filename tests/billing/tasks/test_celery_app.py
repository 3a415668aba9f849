"""The Celery app: discovery, the beat schedule, and eager mode without a broker."""

import logging
import os
import subprocess
import sys

import pytest
from celery import Celery
from django.conf import settings

from orgbilling.celery import InstalledTasksScheduler
from orgbilling.celery import app as project_app
from orgbilling.db import TRANSIENT_DB_ERRORS
from tests.billing.tasks.conftest import ROOT

PAYMENTS_TASKS = {
    "billing.payments.tasks.sync_lago_invoices",
    "billing.payments.tasks.retry_pending_subscriptions",
}


def test_every_beat_entry_names_a_registered_task():
    project_app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled >= PAYMENTS_TASKS
    unknown = {task for task in scheduled if task not in project_app.tasks}
    assert unknown == set()
    assert {
        "billing.tasks.expire_allocations",
        "billing.tasks.expire_reservations",
        "billing.tasks.rollup_usage",
        "billing.tasks.evaluate_usage_alerts",
        "billing.tasks.reconcile_credits",
    } <= scheduled
    # A run still queued when the next is due is dropped rather than piling up.
    assert all(entry["options"]["expires"] > 0 for entry in settings.CELERY_BEAT_SCHEDULE.values())


def test_no_retry_waits_past_the_brokers_visibility_timeout():
    """An acks-late retry waiting longer than visibility_timeout minus the hard time limit is
    redelivered by Redis to a second worker (a duplicate e-mail, a duplicate run)."""
    project_app.loader.import_default_modules()
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    ours = {name: task for name, task in project_app.tasks.items() if name.startswith("billing.")}
    assert "billing.tasks.send_email" in ours
    for name, task in ours.items():
        if task.autoretry_for and task.retry_backoff:
            assert task.retry_backoff_max + settings.CELERY_TASK_TIME_LIMIT <= visibility, name


def test_every_ledger_task_is_acknowledged_late_and_retries_transient_database_errors():
    """A worker lost mid-task means a re-run (the message was not acknowledged); a lock, pool or
    statement timeout (OperationalError) means a retry, never a dropped run."""
    project_app.loader.import_default_modules()
    ours = {name: task for name, task in project_app.tasks.items() if name.startswith("billing.")}
    ours.pop("billing.tasks.send_email")  # retries the mail server; it touches no ledger row
    assert len(ours) >= 8
    for name, task in ours.items():
        assert task.acks_late, name
        assert set(TRANSIENT_DB_ERRORS) <= set(task.autoretry_for), name


def test_beat_leaves_out_entries_whose_task_is_not_installed(tmp_path, caplog):
    app = Celery("scheduler-test", set_as_current=False)

    @app.task(name="installed.task")
    def installed() -> None:  # pragma: no cover - never run, only scheduled
        pass

    app.conf.beat_schedule = {
        "present": {"task": "installed.task", "schedule": 60.0},
        "absent": {"task": "not.installed.task", "schedule": 60.0},
    }
    with caplog.at_level(logging.WARNING, logger="orgbilling.celery"):
        scheduler = InstalledTasksScheduler(app=app, schedule_filename=str(tmp_path / "beat"))
    try:
        assert "present" in scheduler.schedule
        assert "absent" not in scheduler.schedule
    finally:
        scheduler.close()
    assert any(
        "'absent'" in r.getMessage() and "not.installed.task" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize(("broker", "eager"), [("", "True"), ("redis://127.0.0.1:1/0", "False")])
def test_tasks_run_eagerly_exactly_when_no_broker_is_configured(broker, eager):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "orgbilling.settings.dev", "CELERY_BROKER_URL": broker}
    env.pop("CELERY_RESULT_BACKEND", None)
    code = (
        "import django; django.setup(); from orgbilling.celery import app; "
        "print(app.conf.task_always_eager, app.conf.result_backend)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [eager, broker or "None"]
