"""/metrics is not public: a token and/or an allowed network; 404 when neither is configured
(production's default), open on loopback in dev."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-metrics-token"


@pytest.fixture
def restricted(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    return settings


def test_without_token_or_networks_metrics_do_not_exist(client, db, restricted):
    response = client.get("/metrics")

    assert response.status_code == 404
    assert b"orgbilling_" not in response.content


def test_with_a_token_a_scrape_without_it_is_401(client, db, restricted):
    restricted.METRICS_TOKEN = TOKEN

    response = client.get("/metrics")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", [f"Bearer {TOKEN}x", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}"]
)
def test_a_wrong_token_is_403(client, db, restricted, header):
    restricted.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", HTTP_AUTHORIZATION=header)

    assert response.status_code in (401, 403)
    assert b"orgbilling_" not in response.content


def test_the_right_token_gets_the_metrics(client, db, restricted):
    restricted.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert b"orgbilling_http_request_duration_seconds" in response.content


@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("10.1.2.3", 200),
        ("10.200.0.1", 200),
        ("192.168.1.1", 403),
        ("::ffff:10.1.2.3", 200),
        ("fd00::1", 403),
    ],
)
def test_allowed_networks(client, db, restricted, address, status):
    restricted.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    assert client.get("/metrics", REMOTE_ADDR=address).status_code == status


def test_with_both_configured_a_scrape_needs_both(client, db, restricted):
    restricted.METRICS_TOKEN = TOKEN
    restricted.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}

    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5", **auth).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="172.16.0.5", **auth).status_code == 403


def test_loopback_networks_open_metrics_to_this_machine_only(client, db, restricted):
    restricted.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]

    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 403


def _run_settings(module: str, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    database = django_settings.DATABASES["default"]
    credentials = database["USER"] + (f":{database['PASSWORD']}" if database.get("PASSWORD") else "")
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("METRICS_")},
        "DJANGO_SETTINGS_MODULE": module,
        "DATABASE_URL": f"postgres://{credentials}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DJANGO_SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-0123456789",
        "DJANGO_ALLOWED_HOSTS": "billing.example.com",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{code}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION_SCRAPE = """
from django.test import Client
client = Client(HTTP_HOST="billing.example.com")
for token in (None, "wrong", "s3cret-metrics-token"):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", secure=True, **headers)
    print(response.status_code, b"orgbilling_http_request" in response.content)
"""


def test_production_settings_without_configuration_answer_404(db):
    result = _run_settings("orgbilling.settings.production", PRODUCTION_SCRAPE)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["404 False", "404 False", "404 False"]


def test_production_settings_with_a_token_require_it(db):
    result = _run_settings("orgbilling.settings.production", PRODUCTION_SCRAPE, METRICS_TOKEN=TOKEN)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["401 False", "403 False", "200 True"]


def test_dev_settings_open_metrics_on_loopback_only(db):
    code = """
from django.conf import settings
from django.test import Client
print(settings.METRICS_TOKEN == "", settings.METRICS_ALLOWED_NETWORKS)
here, elsewhere = Client(HTTP_HOST="127.0.0.1"), Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="198.51.100.9")
print(here.get("/metrics").status_code, elsewhere.get("/metrics").status_code)
"""
    result = _run_settings("orgbilling.settings.dev", code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["True ['127.0.0.0/8', '::1/128']", "200 403"]
