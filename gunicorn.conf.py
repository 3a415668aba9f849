"""gunicorn reads this file from its working directory (the image runs it in /app).

With ``PROMETHEUS_MULTIPROC_DIR`` set, every worker keeps its metrics in files there and a
scrape of any worker adds them up: the directory is emptied when gunicorn starts (counters
restart from zero, which Prometheus handles as a reset) and a worker that exits is marked dead
so its live gauges (the database pool's) stop counting.
"""

import glob
import os
from typing import Any


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
