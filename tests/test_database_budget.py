"""The connection budget: production refuses a budget larger than the server allows, and the
system checks catch a gateway that would take the whole pool and a server smaller than the
budget (orgbilling/settings/database.py, orgbilling/checks.py)."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "orgbilling.settings.production",
    "DJANGO_SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-0123456789",
    "DJANGO_ALLOWED_HOSTS": "billing.example.com",
}


def manage(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **PRODUCTION, **environment}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_refuses_to_start_when_the_budget_exceeds_max_connections():
    # 3 web processes x (30 + 3 gateway) + 1 worker x 2 + 10 reserve = 111 > 97
    result = manage("check", ORGBILLING_PROCESS="web", WEB_CONCURRENCY="3", DB_POOL_MAX_SIZE="30")
    assert result.returncode != 0
    assert "connection budget is 111" in result.stderr and "DB_MAX_CONNECTIONS is 97" in result.stderr


def test_a_budget_that_fits_starts():
    result = manage("check", ORGBILLING_PROCESS="web", WEB_CONCURRENCY="3", DB_POOL_MAX_SIZE="25")
    assert result.returncode == 0, result.stderr


def test_check_deploy_compares_the_budget_with_the_servers_real_max_connections():
    # the settings are told the server allows 5000; the test server allows 300 - 3
    result = manage(
        "check", "--deploy", "--database", "default", DB_OPERATOR_RESERVE="1000", DB_MAX_CONNECTIONS="5000"
    )
    assert result.returncode != 0
    assert "orgbilling.E002" in result.stderr + result.stdout
    assert "exceeds the 297 connections" in result.stderr + result.stdout


def test_gateway_threads_must_leave_the_api_part_of_the_pool():
    result = manage(
        "check",
        "--database",
        "default",
        ORGBILLING_PROCESS="web",
        DB_POOL_MAX_SIZE="8",
        LLM_GATEWAY_DB_THREADS="8",
    )
    assert result.returncode != 0
    assert "orgbilling.E001" in result.stderr + result.stdout


def test_web_processes_pool_and_bound_their_statements_commands_do_not():
    show = (
        "from django.conf import settings as s; d = s.DATABASES['default']; "
        "p = d['OPTIONS']['pool']; "
        "print(p['max_size'], d['CONN_MAX_AGE'], p['reconnect_timeout'], d['OPTIONS']['options'])"
    )
    web = manage("shell", "--verbosity", "0", "-c", show, ORGBILLING_PROCESS="web", DB_POOL_MAX_SIZE="7")
    assert web.returncode == 0, web.stderr
    # reconnect_timeout: a restarted database is found again within seconds (docs/decisions.md)
    assert web.stdout.split()[:3] == ["7", "0", "10.0"]
    assert "statement_timeout=5000" in web.stdout and "lock_timeout=3000" in web.stdout
    # this very test process is a command: one plain connection, no timeouts
    assert "pool" not in settings.DATABASES["default"]["OPTIONS"]
    assert "options" not in settings.DATABASES["default"]["OPTIONS"]
