"""Dagster's `dg` CLI on this project, typed from the repository root as a Dagster user types it
(`[tool.dg]` in pyproject.toml): the definitions check, the listing of every definition, and
the launch of one partition, each on a temporary instance."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, small_datasets
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from medassets.definitions import defs

DG = Path(sys.executable).with_name("dg")


@pytest.fixture
def home(tmp_path) -> Path:
    """An empty Dagster instance whose storage is its own folder, telemetry off."""
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return tmp_path


def dg(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("MEDASSETS_")}
    return subprocess.run(
        [str(DG), *args], cwd=REPO, capture_output=True, text=True, timeout=300,
        env=inherited | {"DAGSTER_HOME": str(home), "MEDASSETS_HOME": str(home / "state")} | env,
    )


def test_dg_check_defs_passes(home):
    result = dg(home, "check", "defs")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "All definitions loaded successfully." in result.stdout + result.stderr


def test_dg_lists_every_definition_of_the_definitions_object(home):
    result = dg(home, "list", "defs", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    listed = json.loads(result.stdout)
    graph = defs.resolve_asset_graph()
    assert {asset["asset_key"] for asset in listed["assets"]} == {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {check["key"] for check in listed["asset_checks"]} == {f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys}
    assert {job["name"] for job in listed["jobs"]} == {job.name for job in defs.jobs}
    assert {sensor["name"] for sensor in listed["sensors"]} == {sensor.name for sensor in defs.sensors}
    assert {schedule["name"] for schedule in listed["schedules"]} == {schedule.name for schedule in defs.schedules}


@pytest.mark.slow
def test_dg_launch_materializes_one_raw_dataset_partition(home):
    (home / "data").mkdir()
    datasets = small_datasets(home / "data")  # 10 positive and 20 negative rows per task
    result = dg(home, "launch", "--assets", "raw_dataset", "--partition", "breast_cancer", MEDASSETS_DATASETS=str(datasets))
    assert result.returncode == 0, result.stderr[-3000:]
    with DagsterInstance.from_config(str(home)) as instance:
        assert [run.status for run in instance.get_runs()] == [DagsterRunStatus.SUCCESS]
        records = instance.fetch_materializations(AssetKey("raw_dataset"), limit=10).records
        assert [record.partition_key for record in records] == ["breast_cancer"]
    rows = pd.read_parquet(home / "state" / "assets" / "raw_dataset" / "breast_cancer.parquet")
    assert (len(rows), int(rows["label"].sum())) == (30, 10)
