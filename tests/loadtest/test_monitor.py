"""loadtest/monitor.py: the peak of connections to the database, from one separate connection."""

import time

import psycopg
import pytest
from django.conf import settings

from loadtest.monitor import ConnectionMonitor
from loadtest.run import connect_params

pytestmark = pytest.mark.django_db


def test_monitor_sees_the_peak_of_connections_but_not_itself():
    params = connect_params(settings.DATABASES["default"])
    lines: list[str] = []
    with ConnectionMonitor(params, interval=0.05, heartbeat=0.1, say=lines.append) as monitor:
        time.sleep(0.3)
        # The count now, not the window's peak: a connection a previous test was still closing
        # can be in the first samples and gone by the time the extra ones open.
        baseline = monitor.latest()
        assert baseline is not None
        extra = [psycopg.connect(**params) for _ in range(3)]
        time.sleep(0.3)
        for conn in extra:
            conn.close()
        time.sleep(0.2)

    result = monitor.result()
    assert result.peak == baseline + 3
    assert result.max_connections > 0 and result.database == params["dbname"]
    assert result.samples >= 10 and result.failed_samples == 0
    assert result.sessions_opened is not None and result.sessions_opened >= 3
    assert lines and "PostgreSQL:" in lines[0]
