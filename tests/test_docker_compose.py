"""docker-compose.yml runs each process in the role the connection budget counts it in."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_runs_worker_and_beat_as_worker_processes_with_the_budgeted_concurrency():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    for name in ("worker", "beat"):
        assert services[name]["environment"]["ORGBILLING_PROCESS"] == "worker", name
    worker = services["worker"]
    command = worker["command"]
    concurrency = command[command.index("--concurrency") + 1]
    assert (
        concurrency == worker["environment"]["CELERY_WORKER_CONCURRENCY"] == "${CELERY_WORKER_CONCURRENCY:-2}"
    )


def test_web_and_worker_share_the_settlement_spool_the_image_lets_the_app_user_write():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    spool = "/var/lib/orgbilling/settlement-spool"

    for name in ("web", "worker"):
        service = services[name]
        assert service["environment"]["LLM_SETTLEMENT_SPOOL_DIR"] == spool, name
        assert f"settlement-spool:{spool}" in service["volumes"], name
    assert f"install -d -o app -g app -m 0700 {spool}" in dockerfile
    assert f"ENV LLM_SETTLEMENT_SPOOL_DIR={spool}" in dockerfile
