"""Re-evaluation: automation requests exactly what a model update, an ensemble member's new
labels, an ensemble's new rules, a reviewer's new verdict or a code change affects; the registry
sensor keeps the model and ensemble partitions in step; the verdicts sensor observes the
adjudications when they change; the schedule observes the weights."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
)

import medassets
from medassets import paths
from medassets.core.adjudication import checked, open_adjudications
from medassets.defs import automation, evaluation
from medassets.definitions import defs
from medassets.tasks import TASK_KEYS

MODELS = ("model-a", "model-b")


def _local_models(tmp_path, monkeypatch, fingerprints=("quick", "quick")):
    """MODELS registered with weights in local folders (never loaded here), revised by `fingerprints`."""
    entries = []
    for name, fingerprint in zip(MODELS, fingerprints):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"name": name}))
        (folder / "model.safetensors").write_bytes(b"weights")
        entries.append(f"  - name: {name}\n    backend: vllm\n    source: {{path: {folder}}}\n    fingerprint: {fingerprint}\n")
    registry = tmp_path / "models.yaml"
    registry.write_text("models:\n" + "".join(entries))
    monkeypatch.setenv("MEDASSETS_REGISTRY", str(registry))
    monkeypatch.setenv("MEDASSETS_HOME", str(tmp_path / "state"))
    return tmp_path


@pytest.fixture
def two_local_models(tmp_path, monkeypatch):
    return _local_models(tmp_path, monkeypatch)


def _report(instance, asset: str, partitions, **tags) -> None:
    for partition in partitions:
        instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=partition, tags=tags or None))


ALL_KEYS = [f"{model}|{task}" for model in MODELS for task in TASK_KEYS]


@pytest.fixture
def settled(two_local_models):
    """An instance as a finished evaluation leaves it: weights observed, every partition
    materialized, and automation evaluated once (nothing to do). Yields it and the cursor."""
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("model", list(MODELS))
        _observe(instance)
        _everything_materialized(instance)
        result = evaluate_automation_conditions(defs=defs, instance=instance)
        assert result.total_requested == 0
        yield instance, result.cursor


def _everything_materialized(instance: DagsterInstance) -> None:
    _report(instance, "embedded_model", [None])
    for asset in ("raw_dataset", "split", "prompts"):
        _report(instance, asset, TASK_KEYS)
    for asset in ("predictions", "parsed_labels", "metrics"):
        _report(instance, asset, ALL_KEYS)
    _report(instance, "comparison", [None])
    _report(instance, "report", [None])


def _observe(instance) -> dict[str, str]:
    """Observes every model's weights; their revisions (model_weights' data versions) by model."""
    result = defs.resolve_job_def("observe_models").execute_in_process(instance=instance)
    assert result.success
    observations = (event.event_specific_data.asset_observation for event in result.get_asset_observation_events())
    return {o.partition: o.tags["dagster/data_version"] for o in observations if o.asset_key == AssetKey("model_weights")}


def test_a_new_revision_requests_exactly_that_models_partitions(settled, two_local_models):
    instance, cursor = settled
    # Same weights observed again: nothing to do.
    _observe(instance)
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.total_requested == 0

    # model-a gets new weights.
    (two_local_models / "model-a" / "config.json").write_text(json.dumps({"name": "model-a", "v": 2}))
    _observe(instance)
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    model_a = {f"model-a|{t}" for t in TASK_KEYS}
    # Its predictions, and the evaluation after them, in the same request; nothing of model-b.
    for asset in ("predictions", "parsed_labels", "metrics", "reasoning_accounting"):
        assert result.get_requested_partitions(AssetKey(asset)) == model_a, asset
    assert result.total_requested == 4 * len(TASK_KEYS)

    # Once its metrics are updated, the comparison follows.
    _report(instance, "metrics", sorted(model_a))
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(AssetKey("comparison")) == 1
    assert result.get_requested_partitions(AssetKey("predictions")) == set()


def test_an_answer_changing_setting_requests_that_models_partitions_and_others_nothing(settled, two_local_models):
    """model-a's dtype changes its answers: its partitions re-run. model-b's memory share and
    Kubernetes placement change none: nothing re-runs."""
    instance, cursor = settled
    registry = two_local_models / "models.yaml"
    text = registry.read_text()
    edited = text.replace("    fingerprint: quick\n", "    fingerprint: quick\n    dtype: bfloat16\n", 1)
    edited += "    gpu_memory_utilization: 0.9\n    kubernetes: {node_selector: {gpu: h100}}\n"
    registry.write_text(edited)
    _observe(instance)
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    for asset in ("predictions", "parsed_labels", "metrics"):
        assert result.get_requested_partitions(AssetKey(asset)) == {f"model-a|{t}" for t in TASK_KEYS}, asset


def test_content_fingerprint_sees_weights_rewritten_with_the_same_size_and_time(tmp_path, monkeypatch):
    """Weights rewritten in place, keeping size and modification time: the `fingerprint:
    content` model (model-a) gets a new revision and its partitions alone re-run; the quick
    fingerprint (model-b) cannot tell, which is what `content` is for."""
    folders = _local_models(tmp_path, monkeypatch, fingerprints=("content", "quick"))
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("model", list(MODELS))
        before = _observe(instance)
        _everything_materialized(instance)
        cursor = evaluate_automation_conditions(defs=defs, instance=instance).cursor
        for name in MODELS:
            weights = folders / name / "model.safetensors"
            stat = weights.stat()
            weights.write_bytes(b"WEIGHTS")
            os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        after = _observe(instance)
        assert after["model-a"] != before["model-a"]
        assert after["model-b"] == before["model-b"]
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        for asset in ("predictions", "parsed_labels", "metrics"):
            assert result.get_requested_partitions(AssetKey(asset)) == {f"model-a|{t}" for t in TASK_KEYS}, asset


def test_new_prompts_rerun_that_task_for_every_model(settled):
    instance, cursor = settled
    _report(instance, "prompts", ["stigma_labeling"])
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.get_requested_partitions(AssetKey("predictions")) == {f"{m}|stigma_labeling" for m in MODELS}
    assert result.get_requested_partitions(AssetKey("metrics")) == {f"{m}|stigma_labeling" for m in MODELS}


def test_a_code_change_marks_its_asset_for_reevaluation(settled):
    instance, cursor = settled
    changed_parser = evaluation.parsed_labels.map_asset_specs(lambda spec: spec.replace_attributes(code_version="new-parser"))
    changed = Definitions.merge(
        Definitions(assets=[a for a in defs.assets if a is not evaluation.parsed_labels] + [changed_parser]),
        Definitions(asset_checks=defs.asset_checks, resources=defs.resources, jobs=defs.jobs),
    )
    result = evaluate_automation_conditions(defs=changed, instance=instance, cursor=cursor)
    assert result.get_requested_partitions(AssetKey("parsed_labels")) == set(ALL_KEYS)
    assert result.get_requested_partitions(AssetKey("predictions")) == set()


def _code_versions(definitions) -> dict[str, str]:
    return {key.to_user_string(): version for a in definitions.assets if hasattr(a, "code_versions_by_key") for key, version in a.code_versions_by_key.items()}


CODE_VERSIONS = "import json; from medassets.definitions import defs; from test_automation import _code_versions; print(json.dumps(_code_versions(defs)))"


@pytest.mark.parametrize("edited, changed", [
    ("core/parsing.py", {"parsed_labels"}),
    # the labels' learned cut-off; the accounting's F1
    ("core/metrics/_labels.py", {"parsed_labels", "metrics", "ensemble_metrics", "comparison", "report", "reasoning_accounting"}),
    ("core/comparison/_plots.py", {"comparison", "report"}),
    ("core/accounting.py", {"reasoning_accounting", "report"}),
    # the majority label per item
    ("core/labels.py", {"parsed_labels", "metrics", "ensemble_labels", "ensemble_metrics", "comparison", "report", "error_analysis"}),
    ("core/adjudication.py", {"adjudicated_gold", "metrics", "ensemble_metrics", "comparison"}),  # the gold labels they score against
    ("core/ensemble.py", {"ensemble_labels"}),
    ("core/asking.py:def item_seed", {"predictions"}),  # how a sampled item's seed is derived; the rest of the module is not read
])
def test_editing_the_logic_changes_exactly_its_assets_code_versions(edited, changed, tmp_path):
    """The definitions loaded from a copy of the package whose parser (or metrics) source
    differs by one line (its first docstring, or the first after `file:marker`): those
    assets, and only those, get new code versions."""
    package = Path(medassets.__file__).parent
    shutil.copytree(package, tmp_path / "medassets", ignore=shutil.ignore_patterns("__pycache__"))
    edited, _, marker = edited.partition(":")
    source = tmp_path / "medassets" / edited
    text = source.read_text()
    at = text.index('"""', text.index(marker))  # an empty marker: the module's docstring
    source.write_text(text[:at] + '"""Edited. ' + text[at + 3 :])
    here = Path(__file__).parent
    output = subprocess.run(
        [sys.executable, "-c", CODE_VERSIONS], cwd=tmp_path, env=os.environ | {"PYTHONPATH": f"{tmp_path}{os.pathsep}{here}"},
        capture_output=True, text=True, check=True,
    ).stdout
    before, after = _code_versions(defs), json.loads(output)
    assert before.keys() == after.keys()
    assert {name for name in before if before[name] != after[name]} == changed
    assert all(before[name] for name in ("prompts", "parsed_labels", "metrics", "comparison", "embedded_model"))


EDIT_TASK = (
    "import dataclasses, sys; from medassets import tasks; task, field, value = sys.argv[1:]; "
    "tasks.TASKS[task] = dataclasses.replace(tasks.TASKS[task], **{field: value})"
)


@pytest.mark.parametrize("field, changed", [
    ("positive_phrase", {"predictions", "parsed_labels"}),  # the parser, few-shot answers, constrained decoding
    ("task_phrase", {"prompts", "predictions"}),  # the wording of prompts and of few-shot examples
    ("title", {"comparison", "report"}),  # Table 3, the report and the plot
])
def test_editing_a_task_changes_exactly_the_code_versions_of_the_assets_that_read_it(field, changed):
    """The definitions loaded in a process where one task's field was edited before anything read it."""
    here = Path(__file__).parent
    output = subprocess.run(
        [sys.executable, "-c", f"{EDIT_TASK}; {CODE_VERSIONS}", "breast_cancer", field, "edited"],
        env=os.environ | {"PYTHONPATH": os.pathsep.join([str(Path(medassets.__file__).parents[1]), str(here)])},
        capture_output=True, text=True, check=True,
    ).stdout
    before, after = _code_versions(defs), json.loads(output)
    assert before.keys() == after.keys()
    assert {name for name in before if before[name] != after[name]} == changed


def test_registry_sensor_adds_and_removes_model_partitions(two_local_models, tmp_path):
    with DagsterInstance.ephemeral() as instance:
        # Before any prompts exist, new models get their partitions but no generation yet.
        result = automation.model_registry(build_sensor_context(instance=instance))
        assert sorted(result.dynamic_partitions_requests[0].partition_keys) == sorted(MODELS)
        assert [r.job_name for r in result.run_requests] == ["observe_models"]

        _report(instance, "prompts", TASK_KEYS)
        result = automation.model_registry(build_sensor_context(instance=instance))
        (add,) = result.dynamic_partitions_requests
        assert sorted(add.partition_keys) == sorted(MODELS)
        generate = [r for r in result.run_requests if r.job_name == "generate"]
        assert len(generate) == len(MODELS)
        for request, model in zip(generate, MODELS):  # one run over the model's six tasks
            assert request.tags == {
                "dagster/asset_partition_range_start": f"{model}|{TASK_KEYS[0]}",
                "dagster/asset_partition_range_end": f"{model}|{TASK_KEYS[-1]}",
            }
        assert any(r.job_name == "observe_models" for r in result.run_requests)

        instance.add_dynamic_partitions("model", list(MODELS))
        registry = tmp_path / "models.yaml"
        registry.write_text(registry.read_text().split("  - name: model-b")[0])  # model-b removed
        result = automation.model_registry(build_sensor_context(instance=instance, cursor=result.cursor))
        (delete,) = result.dynamic_partitions_requests
        assert list(delete.partition_keys) == ["model-b"]
        assert result.run_requests == []

        instance.delete_dynamic_partition("model", "model-b")
        result = automation.model_registry(build_sensor_context(instance=instance, cursor=result.cursor))
        assert result.dynamic_partitions_requests == [] and result.run_requests == []


def _registry_tick(instance, cursor: str | None):
    """The model_registry sensor's tick, and the observation runs it asks for, executed."""
    result = automation.model_registry(build_sensor_context(instance=instance, cursor=cursor))
    for request in result.run_requests:
        assert request.job_name in ("observe_models", "observe_ensembles"), request.job_name
        assert defs.resolve_job_def(request.job_name).execute_in_process(instance=instance).success
    return result


def _edit_entry(registry: Path, model: str, line: str) -> None:
    """`line` added to `model`'s entry in the registry file."""
    head, tail = registry.read_text().split(f"  - name: {model}\n")
    registry.write_text(f"{head}  - name: {model}\n    {line}\n{tail}")


def test_a_registry_edit_is_observed_and_makes_exactly_that_entrys_predictions_stale(settled, two_local_models):
    """`shots` edited on model-a: the registry sensor has the models observed at its next tick and
    automation re-runs model-a's predictions alone; model-b's memory share edited: observed, and
    nothing is stale."""
    instance, cursor = settled
    registry = two_local_models / "models.yaml"
    quiet = _registry_tick(instance, None)  # the first tick: every entry is new to its cursor
    assert _registry_tick(instance, quiet.cursor).run_requests == []  # nothing edited since

    _edit_entry(registry, "model-a", "shots: 4")
    edited = _registry_tick(instance, quiet.cursor)
    assert [r.job_name for r in edited.run_requests] == ["observe_models"]
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    for asset in ("predictions", "parsed_labels", "metrics", "reasoning_accounting"):
        assert result.get_requested_partitions(AssetKey(asset)) == {f"model-a|{t}" for t in TASK_KEYS}, asset
    assert result.total_requested == 4 * len(TASK_KEYS)
    for asset in ("predictions", "parsed_labels", "metrics", "reasoning_accounting"):
        _report(instance, asset, [f"model-a|{t}" for t in TASK_KEYS])
    _report(instance, "comparison", [None])
    _report(instance, "report", [None])
    cursor = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor).cursor

    _edit_entry(registry, "model-b", "gpu_memory_utilization: 0.9")
    neutral = _registry_tick(instance, edited.cursor)
    assert [r.job_name for r in neutral.run_requests] == ["observe_models"]
    assert evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor).total_requested == 0


def test_a_model_whose_weights_cannot_be_reached_is_named_and_the_others_are_observed(two_local_models):
    shutil.rmtree(two_local_models / "model-a")
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("model", list(MODELS))
        result = defs.resolve_job_def("observe_models").execute_in_process(instance=instance)
        assert result.success
        observed = {event.event_specific_data.asset_observation.partition for event in result.get_asset_observation_events()}
        assert observed == {"model-b"}
        errors = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.level >= 40]
        assert any(message.startswith("model-a: not observed, its weights cannot be reached") for message in errors), errors


def _analysis_tick(instance, cursor: str | None):
    """The analysis_file sensor's tick, and the observation it asks for, executed."""
    result = automation.analysis_file(build_sensor_context(instance=instance, cursor=cursor))
    for request in result.run_requests:
        assert defs.resolve_job_def(request.job_name).execute_in_process(instance=instance).success
    return result


def test_editing_the_analysis_file_reruns_the_metrics_and_comparison_never_the_predictions(settled, tmp_path, monkeypatch):
    instance, cursor = settled
    analysis = tmp_path / "analysis.yaml"
    analysis.write_text("confidence: 0.95\n")
    monkeypatch.setenv("MEDASSETS_ANALYSIS", str(analysis))
    first = _analysis_tick(instance, None)
    assert len(first.run_requests) == 1
    _report(instance, "metrics", ALL_KEYS)  # as a finished evaluation leaves them, after the observation
    _report(instance, "comparison", [None])
    _report(instance, "report", [None])
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert _analysis_tick(instance, first.cursor).run_requests == []  # unchanged: not observed again
    assert evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor).total_requested == 0

    analysis.write_text("confidence: 0.9  # narrower intervals\n")
    assert len(_analysis_tick(instance, first.cursor).run_requests) == 1
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_requested_partitions(AssetKey("metrics")) == set(ALL_KEYS)
    assert result.get_requested_partitions(AssetKey("predictions")) == set()
    assert result.get_requested_partitions(AssetKey("parsed_labels")) == set()
    assert result.get_num_requested(AssetKey("comparison")) == 0  # after the metrics, once
    _report(instance, "metrics", ALL_KEYS)
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(AssetKey("comparison")) == result.get_num_requested(AssetKey("report")) == 1  # one step makes both
    assert not any(result.get_num_requested(AssetKey(asset)) for asset in ("predictions", "parsed_labels", "metrics", "error_analysis"))


def test_schedule_observes_every_models_weights():
    (schedule,) = defs.schedules
    assert schedule.job_name == "observe_models"
    assert schedule.cron_schedule == paths.DEFAULT_REEVALUATION_CRON
    (request,) = schedule.evaluate_tick(build_schedule_context()).run_requests
    assert request.job_name in (None, "observe_models")


def _statuses(env: dict) -> dict:
    """Each sensor's (default status, minimum interval) and the schedule's (status, cron), as the definitions built under `env` give them."""
    code = (
        "import json; from medassets.definitions import defs; "
        "print(json.dumps({**{s.name: (s.default_status.value, s.minimum_interval_seconds) for s in defs.sensors}, "
        "**{s.name: (s.default_status.value, s.cron_schedule) for s in defs.schedules}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_automation_is_on_by_default_and_can_be_turned_off(monkeypatch):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDASSETS_")}
    on = _statuses(env)
    assert on["reevaluation"][0] == on["model_registry"][0] == on["review_verdicts"][0] == "RUNNING"
    assert on["weekly_reevaluation"] == ["RUNNING", paths.DEFAULT_REEVALUATION_CRON]
    off = _statuses(env | {"MEDASSETS_AUTOMATION": "off", "MEDASSETS_REEVALUATION_CRON": "0 6 * * *"})
    assert off["reevaluation"][0] == off["model_registry"][0] == off["review_verdicts"][0] == "STOPPED"
    assert off["weekly_reevaluation"] == ["STOPPED", "0 6 * * *"]


def test_how_often_automation_and_the_sensors_are_evaluated_is_a_setting():
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDASSETS_")}
    default = _statuses(env)
    assert [default[name][1] for name in ("reevaluation", "model_registry", "review_verdicts")] == [30, 60, 60]
    quick = _statuses(env | {"MEDASSETS_SENSOR_INTERVAL_S": "5"})
    assert [quick[name][1] for name in ("reevaluation", "model_registry", "review_verdicts")] == [5, 5, 5]
    with pytest.raises(ValueError, match=r"MEDASSETS_SENSOR_INTERVAL_S: a whole number of seconds, at least 1 \(given: '0.5'\)"):
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setenv("MEDASSETS_SENSOR_INTERVAL_S", "0.5")
            paths.sensor_interval_s()


ENSEMBLE = "vote"
ENSEMBLE_KEYS = [f"{ENSEMBLE}|{task}" for task in TASK_KEYS]


def _register_ensemble(tmp_path, rule: str = "majority") -> None:
    registry = tmp_path / "models.yaml"
    entries = registry.read_text().split(f"  - {{name: {ENSEMBLE}")[0]
    registry.write_text(entries + f"  - {{name: {ENSEMBLE}, backend: ensemble, members: [model-a, model-b], rule: {rule}}}\n")


def _observe_ensembles(instance) -> None:
    assert defs.resolve_job_def("observe_ensembles").execute_in_process(instance=instance).success


@pytest.fixture
def settled_with_ensemble(two_local_models, tmp_path):
    """`settled`, with an ensemble of the two models: its rules observed, its labels and metrics materialized."""
    _register_ensemble(tmp_path)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("model", list(MODELS))
        instance.add_dynamic_partitions("ensemble", [ENSEMBLE])
        _observe(instance)
        _observe_ensembles(instance)
        _everything_materialized(instance)
        for asset in ("ensemble_labels", "ensemble_metrics"):
            _report(instance, asset, ENSEMBLE_KEYS)
        result = evaluate_automation_conditions(defs=defs, instance=instance)
        assert result.total_requested == 0
        yield instance, result.cursor


def test_a_members_new_labels_rerun_the_ensemble_on_that_task(settled_with_ensemble):
    instance, cursor = settled_with_ensemble
    _report(instance, "parsed_labels", ["model-b|stigma_labeling"])
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    for asset in ("ensemble_labels", "ensemble_metrics"):
        assert result.get_requested_partitions(AssetKey(asset)) == {f"{ENSEMBLE}|stigma_labeling"}, asset
    assert result.get_requested_partitions(AssetKey("metrics")) == {"model-b|stigma_labeling"}
    assert result.get_requested_partitions(AssetKey("error_analysis")) == {"stigma_labeling"}
    assert result.get_num_requested(AssetKey("comparison")) == 1


def test_changed_rules_rerun_the_ensemble_on_every_task(settled_with_ensemble, tmp_path):
    instance, cursor = settled_with_ensemble
    _observe_ensembles(instance)  # the same rules observed again: nothing to do
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.total_requested == 0
    _register_ensemble(tmp_path, rule="any")
    _observe_ensembles(instance)
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_requested_partitions(AssetKey("ensemble_labels")) == set(ENSEMBLE_KEYS)
    assert result.get_requested_partitions(AssetKey("parsed_labels")) == set()


def test_a_new_ensemble_runs_once_its_members_labels_exist(settled, tmp_path):
    instance, cursor = settled
    _register_ensemble(tmp_path)
    instance.add_dynamic_partitions("ensemble", [ENSEMBLE])
    _observe_ensembles(instance)
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.get_requested_partitions(AssetKey("ensemble_labels")) == set(ENSEMBLE_KEYS)
    assert result.get_requested_partitions(AssetKey("predictions")) == set()


def test_a_new_ensemble_waits_for_its_members_labels(two_local_models, tmp_path):
    _register_ensemble(tmp_path)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("model", list(MODELS))
        instance.add_dynamic_partitions("ensemble", [ENSEMBLE])
        _observe(instance)
        _observe_ensembles(instance)
        _report(instance, "embedded_model", [None])
        for asset in ("raw_dataset", "split", "prompts"):
            _report(instance, asset, TASK_KEYS)
        result = evaluate_automation_conditions(defs=defs, instance=instance)
        assert result.get_requested_partitions(AssetKey("ensemble_labels")) == set()

        _report(instance, "predictions", [key for key in ALL_KEYS if key.startswith("model-a")])
        _report(instance, "parsed_labels", [key for key in ALL_KEYS if key.startswith("model-a")])
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.get_requested_partitions(AssetKey("ensemble_labels")) == set()  # model-b's labels are missing

        _report(instance, "predictions", [key for key in ALL_KEYS if key.startswith("model-b")])
        _report(instance, "parsed_labels", [key for key in ALL_KEYS if key.startswith("model-b")])
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.get_requested_partitions(AssetKey("ensemble_labels")) == set(ENSEMBLE_KEYS)


def test_registry_sensor_keeps_ensembles_in_their_own_dimension_and_observes_their_rules(two_local_models, tmp_path):
    _register_ensemble(tmp_path)
    with DagsterInstance.ephemeral() as instance:
        _report(instance, "prompts", TASK_KEYS)
        result = automation.model_registry(build_sensor_context(instance=instance))
        added = {request.partitions_def_name: sorted(request.partition_keys) for request in result.dynamic_partitions_requests}
        assert added == {"model": sorted(MODELS), "ensemble": [ENSEMBLE]}
        generated = {r.tags["dagster/asset_partition_range_start"].split("|")[0] for r in result.run_requests if r.job_name == "generate"}
        assert generated == set(MODELS)  # an ensemble generates nothing: automation runs its labels
        assert [r.job_name for r in result.run_requests].count("observe_ensembles") == 1

        instance.add_dynamic_partitions("model", list(MODELS))
        instance.add_dynamic_partitions("ensemble", [ENSEMBLE])
        same = automation.model_registry(build_sensor_context(instance=instance, cursor=result.cursor))
        assert same.run_requests == [] and same.dynamic_partitions_requests == []

        _register_ensemble(tmp_path, rule="all")
        changed = automation.model_registry(build_sensor_context(instance=instance, cursor=same.cursor))
        assert [r.job_name for r in changed.run_requests] == ["observe_ensembles"]


def _adjudicate(task: str, item_id: str, original: int) -> None:
    """A reviewer's `wrong` verdict on an item, recorded in the response cache's database."""
    store = open_adjudications(None, paths.cache_path())
    try:
        store.add(checked(task, item_id, "wrong", 1 - original, "annotation error", "", "ana", original))
    finally:
        store.close()


def _verdicts_tick(instance, cursor: str | None):
    """The review_verdicts sensor's tick: its run requests, and the observation run it asks for, executed."""
    result = automation.review_verdicts(build_sensor_context(instance=instance, cursor=cursor))
    for request in result.run_requests:
        assert request.job_name == "observe_adjudications"
        assert defs.resolve_job_def("observe_adjudications").execute_in_process(instance=instance).success
    return result


def test_a_new_verdict_reruns_that_tasks_adjudicated_gold_metrics_and_comparison(settled):
    instance, cursor = settled
    quiet = _verdicts_tick(instance, None)  # nobody has judged anything: nothing observed
    assert quiet.run_requests == []
    _adjudicate("stigma_labeling", "stigma-7", 0)
    ticked = _verdicts_tick(instance, quiet.cursor)
    assert len(ticked.run_requests) == 1
    assert _verdicts_tick(instance, ticked.cursor).run_requests == []  # no new verdict since
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.get_requested_partitions(AssetKey("adjudicated_gold")) == {"stigma_labeling"}
    assert result.total_requested == 1
    # Once it is materialized: the metrics of every model on that task, then the comparison.
    _report(instance, "adjudicated_gold", ["stigma_labeling"])
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_requested_partitions(AssetKey("metrics")) == {f"{model}|stigma_labeling" for model in MODELS}
    assert result.total_requested == len(MODELS)
    _report(instance, "metrics", [f"{model}|stigma_labeling" for model in MODELS])
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(AssetKey("comparison")) == result.get_num_requested(AssetKey("report")) == 1  # one step makes both
    assert not any(result.get_num_requested(AssetKey(asset)) for asset in ("predictions", "parsed_labels", "metrics", "error_analysis"))
    _report(instance, "comparison", [None])
    _report(instance, "report", [None])

    # The same verdicts observed again: nothing re-runs.
    assert defs.resolve_job_def("observe_adjudications").execute_in_process(instance=instance).success
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.total_requested == 0

