"""Test settings: the real PostgreSQL given by DATABASE_URL, fast hashing, eager tasks."""

import os
import tempfile
from pathlib import Path

from orgbilling.settings.env import env

env.ENVIRON.setdefault("DJANGO_SECRET_KEY", "test-secret-not-for-production")

from orgbilling.settings.base import *  # noqa: E402,F403

DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# Tasks run eagerly in the test process. A real worker started by a test turns this off, or it
# would run its own retries inline instead of sending them to the broker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)

# Generous limits so ordinary tests never trip them; throttle tests lower them (a served app's
# through the environment).
API_RATE_LIMITS = {
    "read": env("API_RATE_LIMIT_READ", default="100000/minute"),
    "write": env("API_RATE_LIMIT_WRITE", default="100000/minute"),
    "subscription": env("API_RATE_LIMIT_SUBSCRIPTION", default="100000/hour"),
}

# Each test process spools refused gateway settlements in a directory of its own (a served app
# is another process, so another directory unless a test passes LLM_SETTLEMENT_SPOOL_DIR): an
# entry left by one test run must never be settled against another run's reservation ids.
LLM_SETTLEMENT_SPOOL_DIR = env(
    "LLM_SETTLEMENT_SPOOL_DIR",
    default=str(Path(tempfile.gettempdir()) / f"orgbilling-test-spool-{os.getpid()}"),
)
