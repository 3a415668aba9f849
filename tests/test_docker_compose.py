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
