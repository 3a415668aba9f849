"""The Celery application. Tasks live in each app's ``tasks.py``; configuration in settings
(``CELERY_*``: broker in base.py, the rest and the beat schedule in settings/tasks.py).

Run a worker with ``celery -A orgbilling worker`` and the scheduler with
``celery -A orgbilling beat`` (exactly one beat per deployment). Without ``CELERY_BROKER_URL``
tasks run eagerly in the calling process.
"""

import logging
import os
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgbilling.settings.dev")

logger = logging.getLogger(__name__)

app = Celery("orgbilling")
app.config_from_object("django.conf:settings", namespace="CELERY")
# billing.tasks, organizations.tasks (when present): every installed app's tasks module.
app.autodiscover_tasks()
# The payments tasks live in a sub-package. Celery's discovery tolerates its absence: a missing
# ``billing.payments`` (or its ``tasks`` module) is skipped, and beat leaves out its entries.
app.autodiscover_tasks(["billing.payments"])


class InstalledTasksScheduler(PersistentScheduler):
    """The default scheduler, minus entries whose task is not registered in this process.

    Beat would otherwise send messages that every worker rejects as unregistered; here the
    entry is left out and logged once at start-up instead.
    """

    def merge_inplace(self, b: dict[str, Any]) -> None:
        installed = {name: entry for name, entry in b.items() if entry["task"] in self.app.tasks}
        for name in sorted(b.keys() - installed.keys()):
            logger.warning("beat: skipping %r: task %r is not installed", name, b[name]["task"])
        super().merge_inplace(installed)
