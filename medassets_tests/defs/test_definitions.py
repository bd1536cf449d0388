"""The code location: Definitions load and validate, assets are documented, partitions,
the gpu pool, and the workspace and instance files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    BackfillPolicy,
    DagsterInstance,
    Definitions,
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    partition_loading_context,
)

from medassets.definitions import defs
from medassets.defs import checks, generation
from medassets.tasks import TASK_KEYS

ROOT = Path(__file__).resolve().parents[2]
PER_TASK = {"raw_dataset", "split", "prompts", "error_analysis", "adjudications", "adjudicated_gold"}
PER_TASK_AND_MODEL = {"predictions", "parsed_labels", "metrics", "reasoning_accounting"}
PER_TASK_AND_ENSEMBLE = {"ensemble_labels", "ensemble_metrics"}
SPECS = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}


def test_definitions_are_loadable():
    Definitions.validate_loadable(defs)
    assert set(SPECS) == PER_TASK | PER_TASK_AND_MODEL | PER_TASK_AND_ENSEMBLE | {
        "embedded_model", "model_weights", "ensemble_rules", "comparison", "report", "analysis_settings",
    }
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "prepare_data", "prepare_embedded_model", "observe_models", "observe_ensembles", "generate", "evaluate",
        "evaluate_ensembles", "compare", "analyze_errors", "observe_analysis", "observe_adjudications", "adjudicate",
    }


def test_an_ensembles_labels_depend_on_every_models_labels_on_its_task_and_on_its_rules():
    """The lineage draws the ensemble's dependency on its members' parsed labels: all models' on the
    same task (a superset of its members), and its own rules; what reads labels reads both sets."""
    graph = defs.resolve_asset_graph()
    labels = graph.get(AssetKey("ensemble_labels"))
    assert labels.parent_keys == {AssetKey("parsed_labels"), AssetKey("ensemble_rules")}
    with DagsterInstance.ephemeral() as instance, partition_loading_context(dynamic_partitions_store=instance):
        instance.add_dynamic_partitions("model", ["a", "b", "c"])
        instance.add_dynamic_partitions("ensemble", ["vote"])
        parents = graph.get_parent_partition_keys_for_child("vote|stigma_labeling", AssetKey("parsed_labels"), AssetKey("ensemble_labels"))
        assert set(parents.partitions_subset.get_partition_keys()) == {f"{m}|stigma_labeling" for m in "abc"}
        rules = graph.get_parent_partition_keys_for_child("vote|stigma_labeling", AssetKey("ensemble_rules"), AssetKey("ensemble_labels"))
        assert set(rules.partitions_subset.get_partition_keys()) == {"vote"}
    assert graph.get(AssetKey("ensemble_metrics")).parent_keys == {
        AssetKey("ensemble_labels"), AssetKey("adjudicated_gold"), AssetKey("analysis_settings")
    }
    for reader in ("comparison", "error_analysis"):
        assert {AssetKey("parsed_labels"), AssetKey("ensemble_labels")} <= graph.get(AssetKey(reader)).parent_keys, reader
    assert AssetKey("comparison") in graph.get(AssetKey("report")).parent_keys  # lineage: the report reads the comparison


def test_what_scores_against_gold_labels_depends_on_the_adjudicated_ones():
    """Lineage draws adjudicated_gold above the metrics (a partition: the same task's) and the comparison."""
    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey("adjudicated_gold")).parent_keys == {AssetKey("adjudications"), AssetKey("split")}
    for asset in ("metrics", "ensemble_metrics", "comparison"):
        assert AssetKey("adjudicated_gold") in graph.get(AssetKey(asset)).parent_keys, asset
    with DagsterInstance.ephemeral() as instance, partition_loading_context(dynamic_partitions_store=instance):
        instance.add_dynamic_partitions("model", ["a"])
        parents = graph.get_parent_partition_keys_for_child("a|stigma_labeling", AssetKey("adjudicated_gold"), AssetKey("metrics"))
        assert set(parents.partitions_subset.get_partition_keys()) == {"stigma_labeling"}


def test_dagster_cli_validates_the_workspace(tmp_path):
    """`dagster definitions validate` on workspace.yaml, with a throwaway instance beside
    a copy of dagster.yaml (its relative storage paths resolve in the working directory)."""
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=tmp_path, env={"PATH": str(dagster.parent), "DAGSTER_HOME": str(tmp_path), "MEDASSETS_HOME": str(tmp_path / "state")},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


@pytest.mark.parametrize("key", sorted(SPECS))
def test_every_asset_has_a_description_and_a_group(key):
    spec = SPECS[key]
    assert spec.description and len(spec.description) > 20
    assert spec.group_name in {"data", "generation", "evaluation"}


def test_every_asset_check_has_a_description():
    check_specs = [spec for checks in defs.asset_checks for spec in checks.check_specs]
    assert {spec.name for spec in check_specs} == {
        "raw_dataset_is_valid", "raw_dataset_positive_rate", "split_is_stratified",
        "predictions_are_complete", "predictions_from_one_engine", "few_invalid_answers",
    }
    assert all(spec.description for spec in check_specs)


def test_predictions_run_in_the_gpu_pool_as_one_run():
    predictions = generation.predictions
    assert predictions.op.pool == "gpu"
    assert predictions.backfill_policy == BackfillPolicy.single_run()
    assert predictions.backfill_policy != BackfillPolicy.multi_run(1)


def test_partitions():
    model = SPECS["model_weights"].partitions_def
    assert isinstance(model, DynamicPartitionsDefinition) and model.name == "model"
    for key in PER_TASK:
        task = SPECS[key].partitions_def
        assert isinstance(task, StaticPartitionsDefinition)
        assert task.get_partition_keys() == list(TASK_KEYS)
    for key in PER_TASK_AND_MODEL:
        multi = SPECS[key].partitions_def
        assert isinstance(multi, MultiPartitionsDefinition)
        assert [d.name for d in multi.partitions_defs] == ["model", "task"]
        assert multi.get_partitions_def_for_dimension("model") == model
        assert multi.get_partitions_def_for_dimension("task").get_partition_keys() == list(TASK_KEYS)
    ensemble = SPECS["ensemble_rules"].partitions_def
    assert isinstance(ensemble, DynamicPartitionsDefinition) and ensemble.name == "ensemble"
    for key in PER_TASK_AND_ENSEMBLE:
        multi = SPECS[key].partitions_def
        assert [d.name for d in multi.partitions_defs] == ["ensemble", "task"]
        assert multi.get_partitions_def_for_dimension("ensemble") == ensemble
    assert SPECS["comparison"].partitions_def is None


def test_workspace_loads_the_definitions_module():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"] == [{"python_module": {"module_name": "medassets.definitions", "attribute": "defs"}}]


def test_instance_turns_telemetry_off_and_limits_pools_to_one():
    instance = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert instance["telemetry"]["enabled"] is False
    assert instance["concurrency"]["pools"]["default_limit"] == 1
    # storage stays in the folder git ignores
    assert instance["storage"]["sqlite"]["base_dir"].startswith(".dagster")
    assert ".dagster/" in (ROOT / ".gitignore").read_text().split()


@pytest.mark.parametrize("node", ["raw_dataset", "split", "metrics", "comparison", "few_invalid_answers"])
def test_the_launchpad_describes_every_config_field(node):
    """Pydantic field descriptions are what the launchpad shows beside each run config field."""
    definition = checks.few_invalid_answers.node_def if node == "few_invalid_answers" else defs.get_assets_def(node).op
    fields = definition.config_schema.as_field().config_type.fields
    assert fields
    for name, field in fields.items():
        assert field.description and len(field.description) > 15, f"{node}.{name}"


def test_an_unknown_invalid_policy_is_refused_by_the_config_itself():
    from dagster import DagsterInvalidConfigError

    with pytest.raises(DagsterInvalidConfigError, match="invalid"):
        defs.resolve_job_def("compare").execute_in_process(
            run_config={"ops": {"comparison": {"config": {"invalid": "positive"}}}}
        )


def test_the_team_instance_keeps_everything_in_postgres_from_a_variable(tmp_path, monkeypatch):
    """deploy/dagster.yaml validates as Dagster reads it; the URL comes from the environment."""
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "MEDASSETS_POSTGRES_URL"}
    assert not re.search(r"postgres(ql)?://[^@\s]*:[^@\s]*@", (ROOT / "deploy" / "dagster.yaml").read_text())  # no password
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == [{"key": "medassets/stage", "value": "generate", "limit": 1}]
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"]["enabled"] and config["run_retries"]["enabled"]
    assert defs.resolve_job_def("generate").tags["medassets/stage"] == "generate"


def test_the_models_of_a_run_from_its_tags_whatever_its_partitions():
    from medassets.defs.kubernetes import run_models

    registered = ["a", "b", "c"]
    assert run_models({"dagster/asset_partition_range_start": "a|breast_cancer", "dagster/asset_partition_range_end": "b|stigma_labeling"},
                      registered) == ["a", "b"]
    # the error analysis's one run over the tasks (seen failing: the launcher and the daemon test read "breast_cancer" as a model key)
    assert run_models({"dagster/asset_partition_range_start": "breast_cancer", "dagster/asset_partition_range_end": "stigma_labeling"},
                      registered) == []
