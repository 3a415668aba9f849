"""Celery, the beat schedule and alert e-mail settings. Star-imported at the end of base.py.

The broker and result backend (``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND``) are read in
base.py: without a broker, tasks run eagerly in-process (dev, tests) and nothing is scheduled.
"""

from datetime import timedelta

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from orgbilling.settings.env import env

# Tasks are idempotent: acknowledge after they ran, so a worker killed mid-task means a re-run,
# not a lost run. One message at a time per worker process (tasks are long-ish, not many).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=15 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=20 * 60)
# Redis redelivers an unacknowledged message after the visibility timeout: that is how a task
# whose worker died (SIGKILL, OOM, a lost machine) runs again, on another worker. Keep it above
# the longest a task may run, or a slow task would be started twice.
CELERY_VISIBILITY_TIMEOUT_SECONDS = env.int(
    "CELERY_VISIBILITY_TIMEOUT_SECONDS", default=2 * CELERY_TASK_TIME_LIMIT
)
if CELERY_VISIBILITY_TIMEOUT_SECONDS <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT_SECONDS ({CELERY_VISIBILITY_TIMEOUT_SECONDS}) must be above "
        f"CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT}): a task still running would be delivered again."
    )
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_SECONDS,
    # Every worker looks for messages past the timeout this often (kombu's default is about
    # every 100 s whatever the timeout), so a lost task is redelivered within about 110 % of it.
    "unacked_restore_interval": max(1, min(60, CELERY_VISIBILITY_TIMEOUT_SECONDS // 10)),
    "unacked_restore_throttle": 1,
    # kombu waits on a Redis that hangs (a network partition, a stalled server) for ever by
    # default: a publish (an e-mail queued by a request, beat) blocked without end. Now it gives
    # up after its retries (about 10 s) and a worker reconnects.
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2  # the result backend likewise (default: none / 120 s)
CELERY_REDIS_SOCKET_TIMEOUT = 5
# A retry is a message with an ETA that a worker holds unacknowledged until it is due: Redis
# would hand it to a second worker once the visibility timeout passes (a duplicate run, e.g. a
# duplicate e-mail). So the longest retry delay plus the longest run stays within the timeout.
TASK_RETRY_BACKOFF_MAX_SECONDS = CELERY_VISIBILITY_TIMEOUT_SECONDS - CELERY_TASK_TIME_LIMIT
# A worker outlives any broker outage: it keeps reconnecting (every 2 s, backing off to 30 s)
# instead of exiting after Celery's default 100 attempts (about 45 minutes).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_RESULT_EXPIRES = timedelta(days=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # Django's LOGGING stays in charge
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True


def _every(seconds: int, task: str) -> dict[str, object]:
    # A run still queued when the next one is due is dropped, so a stopped worker does not come
    # back to a pile of identical runs.
    return {"task": task, "schedule": timedelta(seconds=seconds), "options": {"expires": seconds}}


def _at(schedule: crontab, task: str, expires: int) -> dict[str, object]:
    return {"task": task, "schedule": schedule, "options": {"expires": expires}}


# Every entry names its task by its registered name. Times are UTC (CELERY_TIMEZONE).
CELERY_BEAT_SCHEDULE = {
    # Subscriptions, invoices and auto top-up (billing/tasks.py; names kept from billing.payments.tasks).
    "sync-lago-invoices": _at(crontab(minute=7), "billing.payments.tasks.sync_lago_invoices", 3600),
    "retry-pending-subscriptions": _every(5 * 60, "billing.payments.tasks.retry_pending_subscriptions"),
    "run-auto-topups": _every(5 * 60, "billing.payments.tasks.run_auto_topups"),
    # The ledger (billing/tasks.py).
    "expire-reservations": _every(2 * 60, "billing.tasks.expire_reservations"),
    "settle-spooled-calls": _every(60, "billing.tasks.settle_spooled_calls"),
    "expire-allocations": _every(5 * 60, "billing.tasks.expire_allocations"),
    "apply-allocation-periods": _every(60, "billing.tasks.apply_allocation_periods"),
    "expire-credit-grants": _every(5 * 60, "billing.tasks.expire_credit_grants"),
    "evaluate-usage-alerts": _every(5 * 60, "billing.tasks.evaluate_usage_alerts"),
    "rollup-usage": _every(15 * 60, "billing.tasks.rollup_usage"),
    "reconcile-credits": _at(crontab(minute=37), "billing.tasks.reconcile_credits", 3600),
    "prune-webhook-events": _at(crontab(hour=3, minute=17), "billing.tasks.prune_webhook_events", 86400),
    # Memberships (organizations/tasks.py).
    "prune-expired-invitations": _at(
        crontab(hour=3, minute=27), "organizations.tasks.prune_expired_invitations", 86400
    ),
}

# Alert e-mail. EMAIL_URL as django-environ reads it: smtp+tls://user:password@host:587,
# consolemail:// (the default: printed to the log), dummymail://.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="orgbilling <billing@localhost>")
SERVER_EMAIL = env("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_SUBJECT_PREFIX = env("EMAIL_SUBJECT_PREFIX", default="[orgbilling] ")
# Operations: who hears about ledger drift. DJANGO_ADMINS and OPS_ALERT_EMAILS are
# comma-separated addresses; both receive drift alerts.
ADMINS = [(email, email) for email in env.list("DJANGO_ADMINS", default=[])]
OPS_ALERT_EMAILS: list[str] = env.list("OPS_ALERT_EMAILS", default=[])

# Processed and ignored webhook events are kept this long (days), then pruned daily.
WEBHOOK_EVENT_RETENTION_DAYS: int = env.int("WEBHOOK_EVENT_RETENTION_DAYS", default=90)
# Invitations that expired (unanswered) are kept this long (days) so the invitee still gets
# 410 invitation_expired, then pruned daily with an audit event each.
ORG_INVITATION_RETENTION_DAYS: int = env.int("ORG_INVITATION_RETENTION_DAYS", default=30)
