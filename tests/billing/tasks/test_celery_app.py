"""The Celery app: discovery, the beat schedule, and eager mode without a broker."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from orgbilling.celery import app as project_app
from orgbilling.db import TRANSIENT_DB_ERRORS
from tests.billing.tasks.conftest import ROOT
from tests.helpers import import_every_module

TASK_MODULES = {"billing.tasks", "organizations.tasks", "orgbilling.tasks"}
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
        "billing.tasks.apply_allocation_periods",
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


def test_every_apps_retries_stay_within_a_short_visibility_timeout():
    """One retry policy for every app's tasks: with a broker visibility timeout of 5 minutes and
    a 1-minute time limit, no task of either app waits longer than the 4 minutes left (the
    organizations app's task too, which once kept Celery's default of 10 minutes: 600 is what
    Celery's autoretry uses when a task sets no ``retry_backoff_max``)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orgbilling.settings.dev",
        "CELERY_TASK_TIME_LIMIT": "60",
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": "300",
    }
    code = (
        "import django; django.setup(); from orgbilling.celery import app; "
        "app.loader.import_default_modules(); "
        "print('\\n'.join(f'{n} {getattr(t, \"retry_backoff_max\", 600)} {t.acks_late}' "
        "for n, t in app.tasks.items() if n.startswith(('billing.', 'organizations.')) and t.autoretry_for))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    tasks = {
        name: (int(wait), acks_late) for name, wait, acks_late in map(str.split, out.stdout.splitlines())
    }
    assert "organizations.tasks.prune_expired_invitations" in tasks
    assert "billing.payments.tasks.sync_lago_invoices" in tasks
    assert {name: wait for name, (wait, _) in tasks.items() if wait > 300 - 60} == {}
    assert all(acks_late == "True" for _, acks_late in tasks.values())


def test_every_task_is_defined_in_a_tasks_module():
    """One place to find a task (issue 12 §2): each app's ``tasks.py``, the shared e-mail task in
    ``orgbilling/tasks.py``; a task keeps its registered name wherever it was first scheduled."""
    import_every_module()
    project_app.loader.import_default_modules()
    ours = {
        name: task.run.__module__
        for name, task in project_app.tasks.items()
        if task.run.__module__.split(".")[0] in {"billing", "organizations", "orgbilling"}
    }
    assert len(ours) >= 12
    assert {name: module for name, module in ours.items() if module not in TASK_MODULES} == {}
