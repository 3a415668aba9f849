"""benchmarks/litellm_column.py: the LiteLLM column's pin, config, database URL and figures.

The proxy itself is not started here (it needs its own virtualenv and a minute to start); these
check what the benchmark builds from and prints about it."""

import argparse
import os

import pytest

from benchmarks import litellm_column
from benchmarks.gateway import Cell


def cell(target: str, *, p50: float, seconds: float, ttft: float | None = None, cpu: float = 0.0) -> Cell:
    return Cell(
        mode="json" if ttft is None else "stream", concurrency=64, target=target, requests=100, errors=0,
        seconds=seconds, p50_ms=p50, p99_ms=p50 * 2, ttft_p50_ms=ttft, ttft_p99_ms=ttft,
        cpu_ms_per_call={target: cpu},
    )  # fmt: skip


def test_the_shipped_pin_is_read_and_is_not_the_compromised_release():
    version = litellm_column.pinned_version()
    assert version.count(".") == 2
    assert version not in litellm_column.COMPROMISED


def test_a_pin_on_the_compromised_release_is_refused(tmp_path):
    requirements = tmp_path / "requirements-litellm.txt"
    requirements.write_text("# proxy\nlitellm[proxy]==1.107.0\nprisma==0.15.0\n")
    with pytest.raises(ValueError, match="compromised"):
        litellm_column.pinned_version(requirements)
    requirements.write_text("prisma==0.15.0\n")
    with pytest.raises(ValueError, match="pins no litellm"):
        litellm_column.pinned_version(requirements)


def test_the_config_forwards_the_model_to_the_fake_upstream_at_the_gateways_prices():
    config = litellm_column.proxy_config(
        "http://127.0.0.1:41000/v1", model="bench-model", input_per_million=15, output_per_million=60
    )
    (entry,) = config["model_list"]
    assert entry["model_name"] == "bench-model"
    assert entry["litellm_params"]["model"] == "openai/bench-model"
    assert entry["litellm_params"]["api_base"] == "http://127.0.0.1:41000/v1"
    assert entry["litellm_params"]["input_cost_per_token"] == pytest.approx(15e-6)
    assert entry["litellm_params"]["output_cost_per_token"] == pytest.approx(60e-6)
    assert config["general_settings"]["master_key"] == litellm_column.MASTER_KEY


def test_litellms_database_is_its_own_on_the_same_cluster():
    url = litellm_column.database_url_for(
        "postgres://orgbilling:pw@127.0.0.1:26372/orgbilling?sslmode=disable"
    )
    assert url == "postgresql://orgbilling:pw@127.0.0.1:26372/litellm_bench?sslmode=disable"


def test_the_column_compares_litellm_and_the_gateway_with_the_same_direct_cells():
    cells = [
        cell("direct", p50=200.0, seconds=10.0),
        cell("gateway", p50=203.0, seconds=11.0, cpu=1.5),
        cell("litellm", p50=260.0, seconds=40.0, cpu=30.0),
        cell("direct", p50=250.0, seconds=10.0, ttft=205.0),
        cell("litellm", p50=320.0, seconds=20.0, ttft=290.0),
    ]
    json_row, stream_row = litellm_column.column_rows(cells, [64])
    assert json_row["added_p50_ms"] == pytest.approx(60.0)
    assert json_row["throughput_ratio"] == pytest.approx(0.25)
    assert json_row["cpu_ms_per_call"] == pytest.approx(30.0)
    assert json_row["gateway_added_p50_ms"] == pytest.approx(3.0)
    assert json_row["gateway_throughput_ratio"] == pytest.approx(10 / 11)
    assert stream_row["added_ttft_p50_ms"] == pytest.approx(85.0)
    assert stream_row["gateway_added_p50_ms"] is None  # no gateway stream cell in this run
    assert litellm_column.column_rows(cells[:2], [64]) == []  # no litellm cell: no column


def test_without_its_virtualenv_the_column_is_skipped_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LITELLM_VENV", str(tmp_path / "absent"))
    args = argparse.Namespace(litellm=True)
    with litellm_column.proxy(
        args, "http://127.0.0.1:1/v1", "postgres://unused/unused", model="m", prices=(1, 1), port=1
    ) as started:
        assert started is None
    assert "benchmarks/litellm_proxy.sh" in capsys.readouterr().out
    assert litellm_column.report([], [64], None) == []


def test_litellms_database_is_made_afresh_on_the_cluster_and_dropped():
    import psycopg

    cluster = os.environ["DATABASE_URL"]
    name = f"litellm_bench_test_{os.getpid()}"

    def exists() -> bool:
        with psycopg.connect(cluster) as connection:
            return (
                connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
                is not None
            )

    assert litellm_column.recreate_database(cluster, name) is None
    with psycopg.connect(litellm_column.database_url_for(cluster, name), autocommit=True) as connection:
        connection.execute("CREATE TABLE left_over (id int)")  # a previous run's tables
    assert litellm_column.recreate_database(cluster, name) is None
    with psycopg.connect(litellm_column.database_url_for(cluster, name)) as connection:
        assert connection.execute("SELECT to_regclass('left_over')").fetchone() == (None,)
    litellm_column.drop_database(cluster, name)
    assert not exists()
    assert "could not create database" in (
        litellm_column.recreate_database("postgresql://127.0.0.1:1/x", name) or ""
    )
