"""The Dagster jobs end to end, without an LLM: the `baseline` backend (TF-IDF + logistic
regression) goes through the same predictions, parsed labels, metrics and comparison
assets as a model does. State goes to temporary folders (MEDASSETS_HOME, MEDASSETS_REGISTRY,
MEDASSETS_DATASETS) and an ephemeral Dagster instance."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, DagsterEventType, DagsterInvalidConfigError, MarkdownMetadataValue
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, precision_score, recall_score, roc_auc_score

from medassets.core import comparison as comparison_logic
from medassets.core.adjudication import checked, open_adjudications
from medassets.core import report as report_logic
from medassets.core.baseline import fit_scores
from medassets.core.metrics import binary_report
from medassets.core.prompts import VARIANTS, variant_prompts
from medassets.definitions import defs
from medassets.defs import checks
from medassets.defs.io import AssetStorage
from medassets.defs.partitions import partition_key

from medassets.core.metrics import learn_threshold
from medassets.run import print_results
from medassets.tasks import TASK_KEYS, TASKS

# Two baselines: the second predicts exactly what the first does (lbfgs ignores the seed), so
# their paired differences are exactly 0. Differences between models that really differ are
# checked where one model's answers are spoiled (test_run_config_sets_the_comparisons_bootstrap)
# and, for the embedded vLLM model against the baseline, in test_scoring_a_model.py.
REGISTRY = """\
models:
  - name: tfidf-logreg
    backend: baseline
  - name: tfidf-logreg-b
    backend: baseline
    seed: 1
"""
MODELS = ["tfidf-logreg", "tfidf-logreg-b"]
EVALUATED = ["breast_cancer", "medication_regimen_change"]  # the first two tasks, one partition range
EVALUATED_KEYS = [f"{model}|{task}" for model in MODELS for task in EVALUATED]
CELL = re.compile(r"^\d\.\d\d \(\d\.\d\d-\d\.\d\d\)$")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(job: str, instance: DagsterInstance, **kwargs):
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kwargs)


def materializations(result, asset: str) -> dict:
    """{partition key: metadata} of an asset's materializations in a run."""
    found = (event.event_specific_data.materialization for event in result.get_asset_materialization_events())
    return {m.partition: m.metadata for m in found if m.asset_key == AssetKey(asset)}


def check_results(result) -> dict:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def failure_text(result) -> str:
    return "\n".join(
        event.step_failure_data.error.to_string()
        for event in result.all_events if event.event_type == DagsterEventType.STEP_FAILURE
    )


def use_state(monkeypatch, home: Path, registry: Path) -> None:
    monkeypatch.setenv("MEDASSETS_HOME", str(home))
    monkeypatch.setenv("MEDASSETS_REGISTRY", str(registry))
    monkeypatch.delenv("MEDASSETS_DATASETS", raising=False)


@contextmanager
def members_generated(root: Path, registry: str, task: str, members, *, more_models=(), ensembles=()):
    """An ephemeral instance over a fresh state under `root`, `registry` its models file: the
    task's data prepared, the `members`, `more_models` and `ensembles` registered and observed,
    and each member generated on the task. Yields the state's folder and the instance."""
    (root / "models.yaml").write_text(registry)
    home = root / "state"
    with pytest.MonkeyPatch.context() as monkeypatch, DagsterInstance.ephemeral() as instance:
        use_state(monkeypatch, home, root / "models.yaml")
        assert run("prepare_data", instance, partition_key=task).success
        instance.add_dynamic_partitions("model", [*members, *more_models])
        instance.add_dynamic_partitions("ensemble", list(ensembles))
        assert run("observe_models", instance).success and run("observe_ensembles", instance).success
        for member in members:
            assert run("generate", instance, partition_key=partition_key(member, task)).success
        yield home, instance


@dataclass
class Pipeline:
    home: Path
    registry: Path
    data: dict  # task -> prepare_data result
    generate: dict  # model -> generate result (one run over EVALUATED)
    evaluate: dict  # "model|task" -> evaluate result (one run over the model's tasks)
    compare: object

    def asset_file(self, asset: str, *parts: str) -> Path:
        return self.home.joinpath("assets", asset, *parts).with_suffix(".parquet")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    root = tmp_path_factory.mktemp("pipeline")
    registry = root / "models.yaml"
    registry.write_text(REGISTRY)
    with pytest.MonkeyPatch.context() as monkeypatch, DagsterInstance.ephemeral() as instance:
        use_state(monkeypatch, root / "state", registry)
        data = {task: run("prepare_data", instance, partition_key=task) for task in TASK_KEYS}
        instance.add_dynamic_partitions("model", MODELS)
        assert run("observe_models", instance).success
        generate, evaluate = {}, {}
        for model in MODELS:  # one run per stage over the model's tasks, as `make run` launches them
            tasks = {"dagster/asset_partition_range_start": f"{model}|{EVALUATED[0]}", "dagster/asset_partition_range_end": f"{model}|{EVALUATED[-1]}"}
            generate[model] = run("generate", instance, tags=tasks)
            evaluated = run("evaluate", instance, tags=tasks)
            evaluate |= {f"{model}|{task}": evaluated for task in EVALUATED}
        compare = run("compare", instance)
        yield Pipeline(root / "state", registry, data, generate, evaluate, compare)


# --- (a) data ---------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASK_KEYS)
def test_prepare_data_materializes_each_task_with_passing_checks(pipeline, task):
    result = pipeline.data[task]
    assert result.success
    assert {name: e.passed for name, e in check_results(result).items()} == {
        "raw_dataset_is_valid": True, "raw_dataset_positive_rate": True, "split_is_stratified": True,
    }
    frames = {asset: pd.read_parquet(pipeline.asset_file(asset, task)) for asset in ("raw_dataset", "split", "prompts")}
    frames["prompts"] = variant_prompts(frames["prompts"])

    raw = materializations(result, "raw_dataset")[task]
    assert raw["dagster/row_count"].value == len(frames["raw_dataset"])
    assert raw["positive_rate"].value == round(frames["raw_dataset"]["label"].mean(), 4)
    assert [c.name for c in raw["dagster/column_schema"].schema.columns] == ["id", "text", "label"]
    assert raw["dropped_rows"].value == 0
    # the shipped samples are synthetic and opt in to a preview
    assert isinstance(raw["preview"], MarkdownMetadataValue)
    assert frames["raw_dataset"]["id"].iloc[0] in raw["preview"].value

    split = materializations(result, "split")[task]
    prompts = materializations(result, "prompts")[task]
    assert split["dagster/row_count"].value == len(frames["split"]) == len(frames["raw_dataset"])
    assert split["test_rows"].value * len(VARIANTS) == prompts["dagster/row_count"].value
    assert split["test_rows"].value == len(frames["prompts"])
    assert "preview" not in split and "preview" not in prompts
    assert set(frames["prompts"]["id"]) == set(frames["split"].query("part == 'test'")["id"])


# --- (b) the user's own data -------------------------------------------------------------

SECRET = "Patient Jane Roe, MRN 123456"


@pytest.fixture
def user_data(tmp_path, monkeypatch):
    """A breast_cancer entry pointing at a user CSV, no preview set; returns (write, run)."""
    use_state(monkeypatch, tmp_path / "state", tmp_path / "models.yaml")
    config = tmp_path / "datasets.yaml"
    monkeypatch.setenv("MEDASSETS_DATASETS", str(config))
    csv = tmp_path / "notes.csv"

    def write(rows: list[tuple[str, str, str]], **entry) -> Path:
        pd.DataFrame(rows, columns=["note_id", "note", "annotation"]).to_csv(csv, index=False)
        entry = {"path": csv.name, "columns": {"id": "note_id", "text": "note", "label": "annotation"},
                 "labels": {"yes": 1, "no": 0}} | entry
        config.write_text(json.dumps({"tasks": {"breast_cancer": entry}}))  # JSON is YAML
        return csv

    def materialize(instance):
        return run("prepare_data", instance, partition_key="breast_cancer", asset_selection=[AssetKey("raw_dataset")])

    return write, materialize


def user_rows(n: int = 40) -> list[tuple[str, str, str]]:
    return [(f"n{i:03d}", f"{SECRET}: note {i}", "yes" if i % 5 == 0 else "no") for i in range(n)]


def test_user_data_has_no_preview_and_no_text_in_the_event_log(user_data, tmp_path):
    write, materialize = user_data
    write(user_rows())
    with DagsterInstance.ephemeral() as instance:
        result = materialize(instance)
        assert result.success
        metadata = materializations(result, "raw_dataset")["breast_cancer"]
        assert "preview" not in metadata
        assert metadata["dagster/row_count"].value == 40 and metadata["positive_rate"].value == 0.2
        assert SECRET not in repr(instance.all_logs(result.run_id))
    stored = pd.read_parquet(tmp_path / "state" / "assets" / "raw_dataset" / "breast_cancer.parquet")
    assert stored["text"].str.startswith(SECRET).all()


def test_drop_bad_rows_records_count_and_ids(user_data):
    write, materialize = user_data
    rows = user_rows()
    rows[3] = ("n003", "  ", "no")  # whitespace-only text
    rows[7] = ("n007", f"{SECRET}: note 7", "maybe")  # label outside the mapping
    write(rows, drop_bad_rows=True)
    with DagsterInstance.ephemeral() as instance:
        result = materialize(instance)
    assert result.success
    metadata = materializations(result, "raw_dataset")["breast_cancer"]
    assert metadata["dropped_rows"].value == 2
    assert metadata["dagster/row_count"].value == 38
    assert sorted(i for d in metadata["dropped"].value for i in d["ids"]) == ["n003", "n007"]
    assert SECRET not in repr(metadata)


def test_bad_rows_fail_the_run_naming_the_file(user_data):
    write, materialize = user_data
    rows = user_rows()
    rows[7] = ("n007", f"{SECRET}: note 7", "maybe")
    csv = write(rows)
    with DagsterInstance.ephemeral() as instance:
        result = materialize(instance)
    assert not result.success
    error = failure_text(result)
    assert str(csv) in error and "'label'" in error and "row 8" in error
    assert not materializations(result, "raw_dataset")
    assert SECRET not in error


# --- (c) generation, evaluation, comparison -------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_one_generate_run_covers_a_range_of_tasks(pipeline, model):
    result = pipeline.generate[model]
    assert result.success
    produced = materializations(result, "predictions")
    assert sorted(produced) == [f"{model}|{task}" for task in EVALUATED]
    assert all(metadata["backend"].value == "baseline" for metadata in produced.values())
    assert check_results(result)["predictions_are_complete"].passed
    for task in EVALUATED:
        predictions = pd.read_parquet(pipeline.asset_file("predictions", model, task))
        prompts = variant_prompts(pd.read_parquet(pipeline.asset_file("prompts", task)))
        split = pd.read_parquet(pipeline.asset_file("split", task))
        test = predictions[predictions["part"] == "test"]
        assert list(test["id"]) == list(prompts["id"])
        # Its train rows are scored too, for the labels stage's cut-off: every train row, never a test row.
        assert set(predictions.loc[predictions["part"] == "train", "id"]) == set(split.loc[split["part"] == "train", "id"])
        assert (predictions["text"] == "").all() and predictions["score"].between(0, 1).all()  # scores, no rendered phrase


@pytest.mark.parametrize("key", EVALUATED_KEYS)
def test_evaluation_matches_scikit_learn(pipeline, key):
    result = pipeline.evaluate[key]
    assert result.success
    few_invalid = check_results(result)["few_invalid_answers"]
    assert few_invalid.passed and few_invalid.metadata["invalid_by_partition"].value[key] == 0
    labels = pd.read_parquet(pipeline.asset_file("parsed_labels", *key.split("|")))
    assert set(labels["label"]) <= {0, 1} and labels["invalid_reason"].isna().all()
    metrics = pd.read_parquet(pipeline.asset_file("metrics", *key.split("|"))).iloc[0]
    gold, pred = labels["gold"], labels["label"]
    assert metrics[["precision", "recall", "f1"]].tolist() == pytest.approx(
        [precision_score(gold, pred), recall_score(gold, pred), f1_score(gold, pred)]
    )
    assert metrics["n"] == len(labels) and metrics["invalid"] == 0
    assert metrics["f1_low"] <= metrics["f1"] <= metrics["f1_high"]
    assert materializations(result, "metrics")[key]["f1"].value == round(metrics["f1"], 4)


def test_comparison_writes_table3_differences_and_forest_plot(pipeline):
    assert pipeline.compare.success
    reports = pipeline.home / "reports"
    assert (reports / "f1_forest.png").read_bytes()[:8] == PNG_MAGIC
    table = pd.read_csv(reports / "table3.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(table, pd.read_parquet(reports / "table3.parquet"), check_dtype=False)
    assert list(table["Task"]) == [TASKS[task].title for task in EVALUATED]
    cells = table[[c for c in table.columns if c.split()[0] in ("Precision", "Recall", "F1")]]
    assert cells.shape == (2, 3 * len(MODELS))
    assert all(CELL.match(cell) for cell in cells.to_numpy().ravel()), cells
    assert (table[[f"Invalid {model}" for model in MODELS]] == 0).all().all()

    differences = pd.read_csv(reports / "f1_differences.csv")
    assert list(differences["task"]) == EVALUATED
    assert set(zip(differences["model_a"], differences["model_b"])) == {tuple(MODELS)}
    for row in differences.itertuples():
        f1 = {model: pd.read_parquet(pipeline.asset_file("metrics", model, row.task))["f1"].iloc[0] for model in MODELS}
        assert (row.f1_a, row.f1_b) == pytest.approx((f1[MODELS[0]], f1[MODELS[1]]))
        # The same predictions (see REGISTRY): every resample's difference is 0.
        labels = [pd.read_parquet(pipeline.asset_file("parsed_labels", model, row.task))["label"] for model in MODELS]
        assert labels[0].equals(labels[1])
        assert (row.f1_diff, row.f1_diff_low, row.f1_diff_high) == (0, 0, 0)
    metadata = materializations(pipeline.compare, "comparison")[None]
    assert metadata["evaluated_partitions"].value == f"{len(EVALUATED_KEYS)} of {len(MODELS) * len(TASK_KEYS)}"
    # The UI's Table 3 is the report's: a row per task and model, F1 first.
    shown = metadata["table3"].value.split("\n\n", 1)[1]
    assert shown == report_logic.table3_by_model(table).to_markdown(index=False)
    header, _, *rows = shown.splitlines()
    assert [cell.strip() for cell in header.strip("|").split("|")][:3] == ["Task", "Model", "F1"]
    assert len(rows) == len(EVALUATED) * len(MODELS)


@pytest.mark.parametrize("key", EVALUATED_KEYS)
def test_the_baselines_scores_reach_the_metrics_as_scikit_learn_scores_them(pipeline, key):
    model, task = key.split("|")
    predictions = pd.read_parquet(pipeline.asset_file("predictions", model, task))
    labels = pd.read_parquet(pipeline.asset_file("parsed_labels", model, task))
    metrics = pd.read_parquet(pipeline.asset_file("metrics", model, task)).iloc[0]
    gold, scores = labels["gold"], labels["score"]
    test = predictions[predictions["part"] == "test"].reset_index(drop=True)
    assert scores.equals(test["score"]) and scores.between(0, 1).all() and scores.nunique() > 1
    assert (labels["label"] == (scores > 0.5)).all() and (labels["label"] == test["label"]).all()  # the likelier class
    assert metrics["auroc"] == pytest.approx(roc_auc_score(gold, scores), abs=1e-12)
    assert metrics["auprc"] == pytest.approx(average_precision_score(gold, scores), abs=1e-12)
    assert metrics["brier"] == pytest.approx(brier_score_loss(gold, scores), abs=1e-12)
    assert metrics["auroc_low"] <= metrics["auroc"] <= metrics["auroc_high"]
    # The cut-off: learned on cross-validated scores of the train rows, applied to the test rows.
    split = pd.read_parquet(pipeline.asset_file("split", task))
    train = split[split["part"] == "train"]
    seed = 1 if model.endswith("-b") else 0
    _, train_scores = fit_scores(train["text"], train["label"], train["text"][:1], seed=seed)
    threshold = learn_threshold(train["label"].to_numpy(), train_scores)
    assert labels["learned_threshold"].eq(threshold).all() and metrics["learned_threshold"] == threshold
    assert metrics["threshold_f1"] == pytest.approx(f1_score(gold, scores >= threshold))


def test_comparison_adds_auroc_to_table3_differences_and_curves_for_scored_models(pipeline):
    reports = pipeline.home / "reports"
    table = pd.read_csv(reports / "table3.csv", keep_default_na=False)
    for metric in ("AUROC", "AUPRC"):
        cells = table[[f"{metric} {model}" for model in MODELS]]
        assert all(CELL.match(cell) for cell in cells.to_numpy().ravel()), cells
    differences = pd.read_csv(reports / "auroc_differences.csv")
    assert list(differences["task"]) == EVALUATED and (differences["auroc_diff"] == 0).all()  # the same predictions
    assert all((reports / f"score_curves_{task}.png").read_bytes()[:8] == PNG_MAGIC for task in EVALUATED)
    assert "AUROC" in materializations(pipeline.compare, "comparison")[None]["auroc_differences"].value
    assert "data:image/png;base64," in materializations(pipeline.compare, "report")[None][f"score_curves_{EVALUATED[0]}"].value
    report = (reports / "report.html").read_text()
    for task in EVALUATED:  # each task's curves, the very PNG of reports/, embedded under its title
        png = base64.b64encode((reports / f"score_curves_{task}.png").read_bytes()).decode("ascii")
        assert f"curves: {html.escape(TASKS[task].title)}' src='data:image/png;base64,{png}'" in report


# --- (d) checks that fail ---------------------------------------------------------------------

@pytest.fixture
def copied_state(pipeline, tmp_path, monkeypatch):
    """The pipeline's asset files copied to a fresh MEDASSETS_HOME, with a fresh instance."""
    shutil.copytree(pipeline.home / "assets", tmp_path / "assets")
    use_state(monkeypatch, tmp_path, pipeline.registry)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("model", MODELS)
        yield tmp_path, instance


GARBAGE = "I cannot answer"


@pytest.mark.parametrize("garbage_rows", [9, 10, None])  # None: every row
def test_few_invalid_answers_warns_at_the_limit_and_metrics_still_run(copied_state, garbage_rows):
    home, instance = copied_state
    model, task = MODELS[0], EVALUATED[0]
    path = home / "assets" / "predictions" / model / f"{task}.parquet"
    predictions = pd.read_parquet(path)
    garbage_rows = garbage_rows or int((predictions["part"] == "test").sum())
    write_garbage(predictions, predictions.index[:garbage_rows])
    predictions.to_parquet(path, index=False)

    result = run("evaluate", instance, partition_key=f"{model}|{task}")
    assert result.success
    check = check_results(result)["few_invalid_answers"]
    assert check.passed is (garbage_rows < 10)
    assert check.severity == AssetCheckSeverity.WARN
    assert check.metadata["invalid"].value == garbage_rows and check.metadata["limit"].value == 10
    assert sum(check.metadata["invalid_reasons"].value.values()) == garbage_rows
    assert {tuple(example) for example in check.metadata["examples"].value} == {("id", "reason")}
    assert GARBAGE.lower() not in repr(check.metadata).lower()
    # not blocking: the metrics were computed, invalid answers counted as negatives
    assert f"{model}|{task}" in materializations(result, "metrics")
    metrics = pd.read_parquet(home / "assets" / "metrics" / model / f"{task}.parquet").iloc[0]
    assert metrics["invalid"] == garbage_rows


def test_predictions_are_complete_fails_on_missing_rows(copied_state):
    home, instance = copied_state
    key = f"{MODELS[1]}|{EVALUATED[1]}"
    path = home / "assets" / "predictions" / MODELS[1] / f"{EVALUATED[1]}.parquet"
    predictions = pd.read_parquet(path)
    predictions = predictions[predictions["part"] == "test"]  # the train rows the labels stage learns its cut-off on: none
    predictions.iloc[:-3].to_parquet(path, index=False)

    check_only = defs.resolve_job_def("generate").get_subset(
        asset_selection=set(), asset_check_selection={checks.predictions_are_complete.check_key}
    )
    result = check_only.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
    assert not result.get_asset_materialization_events()  # the check alone, nothing regenerated
    check = check_results(result)["predictions_are_complete"]
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    (failure,) = check.metadata["failures"].value
    assert failure["expectation"] == "expect_table_row_count_to_equal"
    assert (failure["value"], failure["observed_value"]) == (len(predictions), len(predictions) - 3)
    assert failure["partition"] == key


def test_every_answer_names_its_engine_and_two_releases_in_a_partition_are_flagged(pipeline, copied_state):
    """The baseline's answers name scikit-learn's release, in the frame, the metadata and the
    report's provenance; a partition whose answers two vLLM releases gave fails the warning check."""
    home, instance = copied_state
    engine = f"scikit-learn {version('scikit-learn')}"
    key = EVALUATED_KEYS[0]
    assert dict(pipeline.generate[MODELS[0]].get_asset_materialization_events()[0].materialization.metadata)["engines"].value == {
        engine: len(pd.read_parquet(pipeline.asset_file("predictions", MODELS[0], EVALUATED[0])))
    }
    assert f"<td>{engine}</td>" in (pipeline.home / "reports" / "report.html").read_text()
    path = home / "assets" / "predictions" / MODELS[0] / f"{EVALUATED[0]}.parquet"
    predictions = pd.read_parquet(path)
    predictions["engine"] = ["vllm 0.31.0"] * 5 + ["vllm 0.32.0"] * (len(predictions) - 5)
    predictions.to_parquet(path, index=False)

    check_only = defs.resolve_job_def("generate").get_subset(
        asset_selection=set(), asset_check_selection={checks.predictions_from_one_engine.check_key}
    )
    flagged = check_results(check_only.execute_in_process(instance=instance, partition_key=key))["predictions_from_one_engine"]
    assert not flagged.passed and flagged.severity == AssetCheckSeverity.WARN
    assert flagged.metadata["engines"].value == {key: {"vllm 0.32.0": len(predictions) - 5, "vllm 0.31.0": 5}}
    other = f"{MODELS[0]}|{EVALUATED[1]}"
    assert check_results(check_only.execute_in_process(instance=instance, partition_key=other))["predictions_from_one_engine"].passed


def write_garbage(predictions: pd.DataFrame, rows) -> None:
    """The baseline's scored answers in `rows` replaced by GARBAGE written as free text, as a model that generates gives it."""
    predictions.loc[rows, ["text", "label", "score"]] = [GARBAGE, pd.NA, float("nan")]


def spoil(home: Path, model: str, task: str, rows: int, flipped: int = 0) -> None:
    """The model's first `rows` answers on the task replaced by GARBAGE, and the `flipped`
    answers after them by the other label."""
    path = home / "assets" / "predictions" / model / f"{task}.parquet"
    predictions = pd.read_parquet(path)
    write_garbage(predictions, predictions.index[:rows])
    others = predictions.index[rows : rows + flipped]
    predictions.loc[others, "label"] = 1 - predictions.loc[others, "label"]
    predictions.to_parquet(path, index=False)


# --- (e) run config, as the launchpad gives it ----------------------------------------------------

def test_run_config_overrides_the_dataset_entry(user_data, tmp_path):
    """Every DatasetConfig field, from run config: the dataset config's entry names a file that
    does not exist and none of the mapping; the run's config points at a TSV with other
    columns, labels and a bad row, and turns the preview on."""
    write, _ = user_data
    rows = user_rows()
    rows[3] = ("n003", f"{SECRET}: note 3", "maybe")
    csv = write(rows)
    (tmp_path / "datasets.yaml").write_text(json.dumps({"tasks": {"breast_cancer": {"path": "absent.csv"}}}))
    tsv = tmp_path / "notes.txt"
    pd.read_csv(csv).to_csv(tsv, sep="\t", index=False)
    config = {"path": tsv.name, "format": "tsv", "columns": {"id": "note_id", "text": "note", "label": "annotation"},
              "labels": {"yes": 1, "no": 0}, "drop_bad_rows": True, "preview": True}
    with DagsterInstance.ephemeral() as instance:
        assert not run("prepare_data", instance, partition_key="breast_cancer", asset_selection=[AssetKey("raw_dataset")]).success
        result = run("prepare_data", instance, partition_key="breast_cancer", asset_selection=[AssetKey("raw_dataset")],
                     run_config={"ops": {"raw_dataset": {"config": config}}})
    assert result.success, failure_text(result)
    metadata = materializations(result, "raw_dataset")["breast_cancer"]
    assert metadata["dagster/row_count"].value == 39 and metadata["dropped_rows"].value == 1
    assert metadata["positive_rate"].value == round(8 / 39, 4)
    assert "n000" in metadata["preview"].value


def test_a_split_with_another_test_share_passes_its_check_against_that_share(tmp_path, monkeypatch):
    use_state(monkeypatch, tmp_path / "state", tmp_path / "models.yaml")
    with DagsterInstance.ephemeral() as instance:
        result = run("prepare_data", instance, partition_key="breast_cancer", asset_selection=[AssetKey("raw_dataset"), AssetKey("split")],
                     run_config={"ops": {"split": {"config": {"test_share": 0.3}}}})
    assert result.success, failure_text(result)
    check = check_results(result)["split_is_stratified"]
    assert check.passed and check.metadata["test_share"].value == 0.3
    split = pd.read_parquet(tmp_path / "state" / "assets" / "split" / "breast_cancer.parquet")
    assert (split["part"] == "test").mean() == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("job, op", [("evaluate", "metrics"), ("compare", "comparison")])
def test_an_unknown_invalid_policy_fails_at_config_validation(copied_state, job, op):
    _, instance = copied_state
    partition = {"partition_key": f"{MODELS[0]}|{EVALUATED[0]}"} if job == "evaluate" else {}
    with pytest.raises(DagsterInvalidConfigError, match=r"(?s)invalid.*ignore"):
        run(job, instance, run_config={"ops": {op: {"config": {"invalid": "ignore"}}}}, **partition)
    assert instance.get_runs() == []  # rejected before a run was created


BOOTSTRAP = {"n_resamples": 300, "confidence": 0.8, "seed": 5, "invalid": "exclude"}


def test_run_config_sets_the_metrics_bootstrap_and_the_check_limit(copied_state):
    home, instance = copied_state
    model, task = MODELS[0], EVALUATED[0]
    spoil(home, model, task, 6)
    result = run("evaluate", instance, partition_key=f"{model}|{task}", run_config={"ops": {
        "metrics": {"config": BOOTSTRAP}, "parsed_labels_few_invalid_answers": {"config": {"limit": 5}},
    }})
    assert result.success, failure_text(result)
    check = check_results(result)["few_invalid_answers"]
    assert not check.passed and check.metadata["limit"].value == 5 and check.metadata["invalid"].value == 6

    labels = pd.read_parquet(home / "assets" / "parsed_labels" / model / f"{task}.parquet")
    metrics = pd.read_parquet(home / "assets" / "metrics" / model / f"{task}.parquet").iloc[0]
    valid = labels[labels["label"] != -1]
    assert (metrics["n"], metrics["invalid"], metrics["invalid_policy"]) == (len(labels) - 6, 6, "exclude")
    assert metrics[["precision", "recall", "f1"]].tolist() == pytest.approx(
        [precision_score(valid["gold"], valid["label"]), recall_score(valid["gold"], valid["label"]), f1_score(valid["gold"], valid["label"])]
    )
    expected = binary_report(labels["gold"], labels["label"], **BOOTSTRAP)
    default = binary_report(labels["gold"], labels["label"])
    intervals = ["f1_low", "f1_high", "precision_low", "recall_high"]
    assert metrics[intervals].tolist() == pytest.approx([expected[k] for k in intervals])
    assert [expected[k] for k in intervals] != pytest.approx([default[k] for k in intervals])  # the settings mattered
    assert materializations(result, "metrics")[f"{model}|{task}"]["n_resamples"].value == 300


def test_run_config_sets_the_comparisons_bootstrap(copied_state):
    """The second model's answers spoiled on one task, some made invalid, some flipped (so the
    two models really differ there), then the comparison with run config: its differences are
    those of the config's settings."""
    home, instance = copied_state
    model, task = MODELS[1], EVALUATED[0]
    spoil(home, model, task, 8, flipped=8)
    assert run("evaluate", instance, partition_key=f"{model}|{task}").success
    result = run("compare", instance, run_config={"ops": {"comparison": {"config": BOOTSTRAP}}})
    assert result.success, failure_text(result)

    labels = pd.concat([
        pd.read_parquet(home / "assets" / "parsed_labels" / m / f"{t}.parquet").assign(model=m, task=t)
        for m in MODELS for t in EVALUATED
    ])
    differences = pd.read_csv(home / "reports" / "f1_differences.csv")
    expected = comparison_logic.paired_f1_differences(labels, **BOOTSTRAP)
    default = comparison_logic.paired_f1_differences(labels, n_resamples=1000, confidence=0.95, seed=0, invalid="negative")
    pd.testing.assert_frame_equal(differences, expected, check_dtype=False)
    spoiled = differences.set_index("task").loc[task]
    assert spoiled["f1_diff"] != 0 and spoiled["f1_diff_low"] < spoiled["f1_diff_high"]
    assert not differences.equals(default)


def stated_settings(home: Path, result, capsys) -> dict[str, str]:
    """Every text that states the settings of a `compare` run's comparison: the HTML report, the
    forest plot's axis label (its PNG Description), the UI's markdown, and what `make run` prints."""
    comparison_metadata, report_metadata = (materializations(result, asset)[None] for asset in ("comparison", "report"))
    print_results(AssetStorage())
    return {
        "report": (home / "reports" / "report.html").read_text(),
        "plot": Image.open(io.BytesIO((home / "reports" / "f1_forest.png").read_bytes())).text["Description"],
        "table3 in the UI": comparison_metadata["table3"].value,
        "differences in the UI": comparison_metadata["f1_differences"].value,
        "plot in the UI": report_metadata["forest_plot"].value.split("![")[0],
        "make run": " ".join(capsys.readouterr().out.split()),  # wrapped at 100 columns
    }


def test_headings_state_the_confidence_correction_and_invalid_policy_of_the_run(copied_state, capsys):
    home, instance = copied_state
    for key in EVALUATED_KEYS:
        result = run("evaluate", instance, partition_key=key, asset_selection=[AssetKey("metrics")],
                     run_config={"ops": {"metrics": {"config": {"confidence": 0.9, "invalid": "exclude"}}}})
        assert result.success, failure_text(result)
    assert pd.read_parquet(home / "assets" / "metrics" / MODELS[0] / f"{EVALUATED[0]}.parquet")["confidence"].tolist() == [0.9]
    result = run("compare", instance, run_config={"ops": {"comparison": {"config": {
        "confidence": 0.9, "correction": "bh", "invalid": "exclude"}}}})
    assert result.success, failure_text(result)

    texts = stated_settings(home, result, capsys)
    for where, text in texts.items():
        assert "90%" in text and "invalid answers excluded" in text, where
        assert "95%" not in text and "Holm" not in text and "scored as negative" not in text, where
    for where in ("report", "differences in the UI", "make run"):
        assert "Benjamini-Hochberg" in texts[where], where
    settings = json.loads((home / "reports" / "settings.json").read_text())
    assert {table: settings[table] for table in ("table3", "f1_differences")} == {
        "table3": {"confidence": [0.9], "invalid_policy": ["exclude"], "n_resamples": [1000], "gold": ["original"], "scores": True, "sampled": False},
        "f1_differences": {"confidence": 0.9, "invalid_policy": "exclude", "n_resamples": 1000, "seed": 0,
                           "correction": "bh", "pairs": "every", "reference": None},
    }


def test_table3_states_the_metrics_settings_when_the_comparison_used_others(copied_state, capsys):
    """The metrics at their defaults (95%, invalid answers negative), the comparison at 90% with
    invalid answers excluded: each table says what it was computed with."""
    home, instance = copied_state
    result = run("compare", instance, run_config={"ops": {"comparison": {"config": {"confidence": 0.9, "invalid": "exclude"}}}})
    assert result.success, failure_text(result)
    texts = stated_settings(home, result, capsys)
    report = texts["report"]
    table3 = report[report.index("<section id='table3'>"):report.index("<section id='forest-plot'>")]
    differences = report[report.index("<section id='differences'>"):report.index("<section id='confusion'>")]
    for text in (table3, texts["plot"], texts["table3 in the UI"]):
        assert "95% " in text and "invalid answers scored as negative" in text and "90%" not in text, text
    for text in (differences, texts["differences in the UI"]):
        assert "90% paired" in text and "invalid answers excluded" in text and "by Holm" in text and "95%" not in text, text
    printed = texts["make run"]
    assert "95% percentile bootstrap intervals, AUROC's from DeLong's variance on the logit scale; invalid answers scored as negative" in printed
    assert "90% paired bootstrap intervals; invalid answers excluded" in printed


# --- (f) the analysis settings file ------------------------------------------------------------

def test_every_run_uses_the_analysis_file_and_a_launched_run_may_override_it(copied_state, tmp_path, monkeypatch, capsys):
    """The file says 90%, no correction and adjudicated gold: runs launched without run config (as
    automation launches them) score against the reviewer's corrected label, exactly as scikit-learn
    does on it, and every text states the file's level; a run's override is recorded."""
    home, instance = copied_state
    analysis = tmp_path / "analysis.yaml"
    analysis.write_text("confidence: 0.9\ncorrection: none\ngold: adjudicated\n")
    monkeypatch.setenv("MEDASSETS_ANALYSIS", str(analysis))
    model, task = MODELS[0], EVALUATED[0]
    labels = pd.read_parquet(home / "assets" / "parsed_labels" / model / f"{task}.parquet")
    item = labels.iloc[0]
    store = open_adjudications(None, home / "cache" / "responses.sqlite")
    try:
        store.add(checked(task, item["id"], "wrong", 1 - int(item["gold"]), "annotation error", "", "ana", int(item["gold"])))
    finally:
        store.close()
    assert run("adjudicate", instance, partition_key=task).success

    for key in EVALUATED_KEYS:
        result = run("evaluate", instance, partition_key=key)
        assert result.success, failure_text(result)
    metadata = materializations(result, "metrics")[EVALUATED_KEYS[-1]]
    assert metadata["analysis_overrides"].value == {} and metadata["gold"].value == "adjudicated"
    corrected = labels["gold"].to_numpy().copy()
    corrected[0] = 1 - corrected[0]
    metrics = pd.read_parquet(home / "assets" / "metrics" / model / f"{task}.parquet").iloc[0]
    predicted = labels["label"].clip(lower=0)  # invalid answers score as negative
    assert (metrics["gold"], metrics["confidence"]) == ("adjudicated", 0.9)
    assert metrics[["precision", "recall", "f1"]].tolist() == pytest.approx(
        [precision_score(corrected, predicted), recall_score(corrected, predicted), f1_score(corrected, predicted)]
    )
    assert f1_score(corrected, predicted) != pytest.approx(f1_score(labels["gold"], predicted))  # the verdict mattered
    untouched = pd.read_parquet(home / "assets" / "metrics" / model / f"{EVALUATED[1]}.parquet").iloc[0]
    assert untouched["gold"] == "adjudicated"  # a task nobody judged keeps its original labels

    result = run("compare", instance)
    assert result.success, failure_text(result)
    settings = json.loads((home / "reports" / "settings.json").read_text())["f1_differences"]
    assert (settings["confidence"], settings["correction"]) == (0.9, "none")
    texts = stated_settings(home, result, capsys)
    for where in ("report", "differences in the UI", "make run"):
        assert "p not adjusted for the several tasks, significant below 0.1" in texts[where], where
        assert "Holm" not in texts[where], where
    assert "have a p below 0.1" in texts["make run"]

    result = run("compare", instance, run_config={"ops": {"comparison": {"config": {"confidence": 0.8}}}})
    assert result.success, failure_text(result)
    assert materializations(result, "comparison")[None]["analysis_overrides"].value == {"confidence": 0.8}
    assert json.loads((home / "reports" / "settings.json").read_text())["f1_differences"]["confidence"] == 0.8
