"""The Celery application. Tasks live in each app's ``tasks.py``; configuration in settings
(``CELERY_*``: broker in base.py, the rest and the beat schedule in settings/tasks.py).

Run a worker with ``celery -A orgbilling worker`` and the scheduler with
``celery -A orgbilling beat`` (exactly one beat per deployment). Without ``CELERY_BROKER_URL``
tasks run eagerly in the calling process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgbilling.settings.dev")

app = Celery("orgbilling")
app.config_from_object("django.conf:settings", namespace="CELERY")
# billing.tasks, organizations.tasks: every installed app's tasks module.
app.autodiscover_tasks()
