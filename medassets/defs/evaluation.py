"""Evaluation assets: parsed labels and metrics per (task, model), an ensemble's labels and
metrics per (task, ensemble), and the comparison of all of them."""

import base64
import json
import math
import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetSelection,
    AssetsDefinition,
    BackfillPolicy,
    DataVersion,
    DataVersionsByPartition,
    DimensionPartitionMapping,
    IdentityPartitionMapping,
    MetadataValue,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    Output,
    asset,
    multi_asset,
    observable_source_asset,
)

from medassets import paths
from medassets.core import accounting as accounting_logic
from medassets.core import adjudication as adjudication_logic
from medassets.core import analysis as analysis_logic
from medassets.core import comparison as comparison_logic
from medassets.core import ensemble as ensemble_logic
from medassets.core import labels as labels_logic
from medassets.core import error_analysis as error_analysis_logic
from medassets.core import metrics as metrics_logic
from medassets.core import parsing
from medassets.core import report as report_logic
from medassets.core.answers import samples_of
from medassets.core.metrics import binary_report
from medassets.core.prompts import templates_version
from medassets.core.registry import EnsembleModel, load_registry, registered_model
from medassets.defs import adjudication
from medassets.defs.analysis import AnalysisConfig, analysis_settings
from medassets.defs.data import DatasetConfig, dataset_source
from medassets.defs.conditions import reevaluate_when_changed
from medassets.defs.io import AssetStorage, frames_by_partition
from medassets.defs.metadata import DOMAIN_TAGS, code_version, column_lineage, frame_metadata, latest_metadata
from medassets.defs.partitions import (
    ensemble_partitions,
    model_and_task,
    model_partitions,
    partition_key,
    task_ensemble_partitions,
    task_model_partitions,
    task_partitions,
)
from medassets.tasks import TASK_KEYS, TASKS, tasks_version

_METRIC_FIELDS = ["n", "tp", "fp", "fn", "tn", "invalid", "invalid_rate"] + [
    f"{metric}{suffix}" for metric in metrics_logic.METRICS for suffix in ("", "_low", "_high")
]


# What turns answers into labels: the parser, the cut-off learned on scores, the task phrases.
parsed_labels_code_version = code_version(labels_logic, parsing, metrics_logic, tasks_version("positive_phrase", "negative_phrases"))


@asset(
    partitions_def=task_model_partitions,
    ins={"split": AssetIn(partition_mapping=MultiToSingleDimensionPartitionMapping("task"))},
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    automation_condition=reevaluate_when_changed(),
    code_version=parsed_labels_code_version,
    backfill_policy=BackfillPolicy.single_run(),
    description="Each test answer as a label: free text parsed to 1, 0 or invalid with the task's answer phrases (with "
    "the answer text, the reasoning and, when invalid, why); a scored answer's label and score as the model gave them, "
    "with the cut-off that maximizes F1 on the scores of the train rows the predictions hold. One row per item and "
    "sample (`sample`); what reads one label per item reads the items' majority label (labels.majority_labels).",
)
def parsed_labels(context: AssetExecutionContext, predictions, split):
    keys = list(context.partition_keys)
    predictions = frames_by_partition(predictions, keys)
    split = frames_by_partition(split, sorted({model_and_task(key)[1] for key in keys}))
    labelled = {}
    for key in keys:
        model, task = model_and_task(key)
        reasoning_model = registered_model(model, paths.registry_path()).reasoning
        labelled[key] = labels_logic.label_answers(task, predictions[key], split[task].set_index("id")["label"], reasoning_model=reasoning_model)
        context.add_asset_metadata(_labels_metadata(labelled[key]), partition_key=key)
    return labelled if len(keys) > 1 else labelled[keys[0]]


def _labels_metadata(frame: pd.DataFrame) -> dict:
    return (
        frame_metadata(frame.drop(columns="gold"))
        | {
            "invalid": int((frame["label"] == -1).sum()),
            "invalid_reasons": MetadataValue.json(frame["invalid_reason"].value_counts().to_dict()),
            "samples": int(frame["sample"].max()) + 1 if len(frame) else 0,
            **({"learned_threshold": float(frame["learned_threshold"].iloc[0])} if len(frame) and frame["learned_threshold"].notna().all() else {}),
            "dagster/column_lineage": column_lineage({
                "id": {"predictions": ["id"]},
                "sample": {"predictions": ["sample"]},
                "gold": {"split": ["label"]},
                "label": {"predictions": ["text", "label"]},
                "answer": {"predictions": ["text"]},
                "reasoning": {"predictions": ["text", "reasoning"]},
                "invalid_reason": {"predictions": ["text", "finish_reason"]},
                "score": {"predictions": ["score"]},
                "learned_threshold": {"predictions": ["score", "part"], "split": ["label"]},
            }),
        }
    )


def report_row(report: dict) -> dict:
    return {field: report[field] for field in _METRIC_FIELDS}


def _sampled(report: dict, answers: pd.DataFrame, items: pd.DataFrame, analysis) -> tuple[dict, dict]:
    """A model answering K > 1 samples per item: precision, recall and F1 are the means over its
    samples with their item-bootstrap intervals (`metrics.sampled_f1`; the counts, invalid answers
    and confusion matrix stay those of its majority labels), beside F1's run-to-run SD and the F1
    of the majority labels (maj@K). K = 1: the report as it is."""
    k = int(samples_of(answers).nunique()) if len(answers) else 1
    if k == 1:
        return report, {"samples": 1, "f1_run_sd": math.nan, "f1_majority": math.nan}
    sampled = metrics_logic.sampled_f1(
        items["gold"], labels_logic.sample_matrix(answers, items["id"]),
        n_resamples=analysis.n_resamples, confidence=analysis.confidence, seed=analysis.seed,
    )
    means = {f"{metric}{suffix}": sampled[f"{metric}{suffix or '_mean'}"] for metric in metrics_logic.METRICS for suffix in ("", "_low", "_high")}
    notes = report["notes"] + sampled["notes"] + (
        [f"the means over {k} samples count invalid answers as negative (invalid: exclude applies to the majority labels' counts)"]
        if analysis.invalid == "exclude" else []
    )
    return report | means | {"notes": notes}, {"samples": k, "f1_run_sd": sampled["f1_run_sd"], "f1_majority": sampled["f1_majority"]}


def _ensemble(name: str) -> EnsembleModel:
    spec = registered_model(name, paths.registry_path())
    if not isinstance(spec, EnsembleModel):
        raise RuntimeError(f"{paths.registry_path()}: {name!r} is an `ensemble` partition but no longer an ensemble entry")
    return spec


@observable_source_asset(
    partitions_def=ensemble_partitions,
    group_name="evaluation",
    description="Each registered ensemble's members and voting rules, observed: the data version of a partition "
    "is a hash of them, so changing them in the registry makes that ensemble's labels stale.",
)
def ensemble_rules(context) -> DataVersionsByPartition:
    registry = load_registry(paths.registry_path())
    partitions = set(context.instance.get_dynamic_partitions(ensemble_partitions.name))
    versions = {
        name: ensemble_logic.rules_version(spec)
        for name, spec in registry.items() if name in partitions and isinstance(spec, EnsembleModel)
    }
    return DataVersionsByPartition({name: DataVersion(version) for name, version in versions.items()})


# An ensemble on a task reads every model's labels on that task (a partition mapping cannot
# pick its members alone): a superset of its members; partitions not stored yet are left out.
EVERY_MODEL_ON_THE_TASK = MultiPartitionMapping({
    "task": DimensionPartitionMapping("task", IdentityPartitionMapping()),
    "model": DimensionPartitionMapping("ensemble", AllPartitionMapping()),
})


@asset(
    partitions_def=task_ensemble_partitions,
    ins={"parsed_labels": AssetIn(partition_mapping=EVERY_MODEL_ON_THE_TASK, metadata={"allow_missing_partitions": True})},
    deps=[AssetDep(ensemble_rules, partition_mapping=MultiToSingleDimensionPartitionMapping("ensemble"))],
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    # A new ensemble runs once its rules are observed (the registry sensor has them observed)
    # and its members' labels exist.
    automation_condition=reevaluate_when_changed(),
    code_version=code_version(ensemble_logic, labels_logic),
    backfill_policy=BackfillPolicy.single_run(),
    description="An ensemble's label for each test item: the vote of its members' parsed labels (each member's majority "
    "label when it answers several samples per item; by its registry "
    "entry's rule, tie and invalid_member), with each member's vote. It depends on every model's parsed labels "
    "on the task, a superset of its members: any model's new labels there re-run it, and automation waits "
    "until every model's labels on the task exist.",
)
def ensemble_labels(context: AssetExecutionContext, parsed_labels: dict[str, pd.DataFrame]):
    keys = list(context.partition_keys)
    voted = {key: _ensemble_labels(context, key, parsed_labels) for key in keys}
    return voted if len(keys) > 1 else voted[keys[0]]


def _ensemble_labels(context: AssetExecutionContext, key: str, parsed_labels: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """An ensemble's labels on a task, from the stored parsed labels of every model (`model|task` keys)."""
    ensemble, task = model_and_task(key)
    spec = _ensemble(ensemble)
    stored = {model: frame for upstream, frame in parsed_labels.items() for model, of_task in [model_and_task(upstream)] if of_task == task}
    absent = [member for member in spec.members if member not in stored]
    if absent:
        raise RuntimeError(
            f"ensemble {ensemble!r}: members {absent} have no parsed labels on {task} yet; materialize their "
            "predictions and parsed_labels first"
        )
    try:
        frame = ensemble_logic.ensemble_labels(
            {member: labels_logic.majority_labels(stored[member]) for member in spec.members}, rule=spec.rule, tie=spec.tie, invalid_member=spec.invalid_member
        )
    except ValueError as exc:
        raise RuntimeError(f"ensemble {ensemble!r} on {task}: {exc}") from None
    context.log.info(f"{ensemble} on {task}: {len(frame)} labels from {spec.rule} votes of {', '.join(spec.members)}")
    context.add_asset_metadata(
        frame_metadata(frame.drop(columns="gold"))
        | {
            "invalid": int((frame["label"] == -1).sum()),
            "invalid_reasons": MetadataValue.json(frame["invalid_reason"].value_counts().to_dict()),
            "backend": "ensemble",
            "model_revision": ensemble_logic.rules_version(spec),
            "members": MetadataValue.json(list(spec.members)),
            "rule": spec.rule, "tie": spec.tie, "invalid_member": spec.invalid_member,
            "dagster/column_lineage": column_lineage({
                "id": {"parsed_labels": ["id"]},
                "gold": {"parsed_labels": ["gold"]},
                "label": {"parsed_labels": ["label"]},
                "invalid_reason": {"parsed_labels": ["label"]},
                "votes": {"parsed_labels": ["label"]},
            }),
        },
        partition_key=key,
    )
    return frame


ADJUDICATED_GOLD = AssetSelection.assets(adjudication.adjudicated_gold)
# Observed by `make run` and the analysis sensor; never observed, the file is read all the same.
ANALYSIS_SETTINGS = AssetSelection.assets(analysis_settings.key)


def _metrics_asset(name: str, labels: AssetsDefinition, partitions_def: MultiPartitionsDefinition, labelled_by: str) -> AssetsDefinition:
    """The metrics of each partition of `labels`; `labelled_by` is the asset whose metadata
    holds the revision of what answered (predictions, or an ensemble's labels)."""
    labels_name = labels.key.to_user_string()

    @asset(
        name=name,
        partitions_def=partitions_def,
        ins={"labels": AssetIn(labels.key)},
        # Read when the analysis settings say `gold: adjudicated`; a task nobody has judged has none.
        deps=[AssetDep(adjudication.adjudicated_gold, partition_mapping=MultiToSingleDimensionPartitionMapping("task")), analysis_settings],
        group_name="evaluation",
        kinds={"pandas", "parquet"},
        tags=DOMAIN_TAGS,
        automation_condition=reevaluate_when_changed(may_be_missing=ADJUDICATED_GOLD | ANALYSIS_SETTINGS),
        code_version=code_version(metrics_logic, adjudication_logic, labels_logic),
        backfill_policy=BackfillPolicy.single_run(),
        description="Precision, recall and F1 of the positive class with percentile bootstrap intervals at the "
        "analysis settings' confidence (95% by default), the invalid count and the confusion matrix, from "
        f"{labels_name} (each item's majority label, with several samples per item), and where the model gives scores AUROC "
        "(its interval from DeLong's variance on the logit scale) and average precision; the confidence, invalid-answer "
        "policy, resamples and gold labels (`original` or `adjudicated`) "
        "come from the analysis settings file (a launched run may override them) and are recorded in the frame and its metadata.",
    )
    def _metrics(context: AssetExecutionContext, config: AnalysisConfig, storage: AssetStorage, labels):
        keys = list(context.partition_keys)
        analysis = config.settings(context)
        rows = {key: _metrics_row(context, analysis, storage, key, labels_of) for key, labels_of in frames_by_partition(labels, keys).items()}
        return rows if len(keys) > 1 else rows[keys[0]]

    def _metrics_row(context: AssetExecutionContext, analysis, storage: AssetStorage, key: str, labels: pd.DataFrame) -> pd.DataFrame:
        model, task = model_and_task(key)
        answers = labels  # one row per item and sample
        labels, gold_changed = adjudication.gold_labels(labels_logic.majority_labels(answers), analysis.gold, task, storage)
        report = binary_report(
            labels["gold"], labels["label"], n_resamples=analysis.n_resamples,
            confidence=analysis.confidence, seed=analysis.seed, invalid=analysis.invalid,
        )
        report, sampling = _sampled(report, answers, labels, analysis)
        for note in report["notes"]:
            context.log.warning(f"{model} on {task}: {note}")
        scored = metrics_logic.scores_row(
            labels["gold"], labels["score"] if "score" in labels else [math.nan] * len(labels),
            float(labels["learned_threshold"].iloc[0]) if "learned_threshold" in labels and len(labels) else math.nan,
            n_resamples=analysis.n_resamples, confidence=analysis.confidence, seed=analysis.seed,
        )
        confusion = pd.DataFrame(report["confusion"], index=["true 1", "true 0"], columns=["predicted 1", "predicted 0", "invalid"])
        # What produced these numbers, to walk back from a metric in the UI.
        produced_by = {
            "model_revision": latest_metadata(context.instance, labelled_by, key).get("model_revision"),
            "prompt_template_version": latest_metadata(context.instance, "prompts", task).get("template_version"),
            "split_seed": latest_metadata(context.instance, "split", task).get("seed"),
            "parser_version": parsed_labels_code_version,
        }
        context.add_asset_metadata(
            {name: round(float(value), 4) for name, value in (report_row(report) | sampling | scored).items() if not math.isnan(value)}
            | {
                "F1": comparison_logic.interval_cell(report["f1"], report["f1_low"], report["f1_high"]),
                "confusion_matrix": MetadataValue.md(confusion.to_markdown()),
                "confidence": report["confidence"],
                "invalid_policy": report["invalid_policy"],
                "gold": analysis.gold,
                "gold_labels_changed": gold_changed,
                "n_resamples": report["n_resamples"],
                "notes": MetadataValue.json(report["notes"]),
                "produced_by": MetadataValue.json(produced_by),
                "dagster/column_lineage": column_lineage(
                    {metric: {labels_name: ["gold", "label"]} for metric in ("precision", "recall", "f1", "invalid")}
                ),
            },
            partition_key=key,
        )
        settings = {setting: report[setting] for setting in metrics_logic.SETTINGS} | {"gold": analysis.gold}
        return pd.DataFrame([{"task": task, "model": model, **report_row(report), **sampling, **scored, **settings}])

    return _metrics


metrics = _metrics_asset("metrics", parsed_labels, task_model_partitions, labelled_by="predictions")
ensemble_metrics = _metrics_asset("ensemble_metrics", ensemble_labels, task_ensemble_partitions, labelled_by="ensemble_labels")


def _evaluated(instance) -> tuple[list[str], list[str]]:
    """The registered models and ensembles (their dynamic partitions), each sorted."""
    return (sorted(instance.get_dynamic_partitions(model_partitions.name)),
            sorted(instance.get_dynamic_partitions(ensemble_partitions.name)))


def _stored_frames(storage: AssetStorage, kind: str, models: list[str], ensembles: list[str]) -> dict[tuple[str, str], pd.DataFrame]:
    """Every stored (model, task) frame of the models' `kind` asset and the ensembles' own
    (`labels`: parsed_labels and ensemble_labels; `metrics`: metrics and ensemble_metrics)."""
    model_asset = {"labels": "parsed_labels", "metrics": "metrics"}[kind]
    return storage.read_model_task_frames(model_asset, models) | storage.read_model_task_frames(f"ensemble_{kind}", ensembles)


def _labels_by_model_and_task(storage: AssetStorage, models: list[str], ensembles: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every stored label frame with its model and task: one label per item (its majority label),
    and one per item and sample (`sample`: 0 for a model asked once)."""
    frames = _stored_frames(storage, "labels", models, ensembles).items()
    items = pd.concat([labels_logic.majority_labels(frame).assign(model=model, task=task) for (model, task), frame in frames], ignore_index=True)
    answers = pd.concat(
        [frame[["id", "gold", "label"]].assign(sample=samples_of(frame), model=model, task=task) for (model, task), frame in frames],
        ignore_index=True,
    )
    return items, answers


def _provenance(instance, registry: dict, models: list[str], tasks: list[str]) -> dict[str, pd.DataFrame]:
    """What produced every number: model revisions and settings, prompt wordings, split seeds, code versions."""
    model_rows = []
    for model in models:
        labelled_by = "ensemble_labels" if isinstance(registry.get(model), EnsembleModel) else "predictions"
        by_task = [found for task in tasks if (found := latest_metadata(instance, labelled_by, partition_key(model, task)))]
        generated = by_task[0] if by_task else {}
        engines = sorted({engine for metadata in by_task for engine in metadata.get("engines") or {}})
        members = generated.get("members")
        vote = f"{generated.get('rule')} vote of {', '.join(members)}" if members else ""
        model_rows.append({
            "Model": model, "Backend": generated.get("backend", ""), "Revision": generated.get("model_revision", ""),
            "Setup": (registry[model].prompt_setup if model in registry else None) or vote,
            "Engines": ", ".join(engines), "Device": generated.get("device", ""),
        })
    task_rows = []
    for task in tasks:
        prompts_metadata = latest_metadata(instance, "prompts", task)
        split_metadata = latest_metadata(instance, "split", task)
        task_rows.append({
            "Task": task, "Split seed": split_metadata.get("seed", ""), "Test rows": split_metadata.get("test_rows", ""),
            "Template versions": ", ".join(f"{k} {v}" for k, v in (prompts_metadata.get("variant_versions") or {}).items()),
        })
    versions = pd.DataFrame([
        {"Logic": "parser (parsed_labels)", "Version": parsed_labels_code_version},
        {"Logic": "ensemble vote (ensemble_labels)", "Version": code_version(ensemble_logic)},
        {"Logic": "metrics", "Version": code_version(metrics_logic)},
        {"Logic": "comparison", "Version": comparison_code_version},
        {"Logic": "prompt templates", "Version": templates_version()},
    ])
    return {"models": pd.DataFrame(model_rows), "tasks": pd.DataFrame(task_rows), "code versions": versions}


comparison_code_version = code_version(comparison_logic, metrics_logic, adjudication_logic, analysis_logic, labels_logic, tasks_version("title"))
report_code_version = code_version(
    comparison_logic, metrics_logic, report_logic, error_analysis_logic, labels_logic, accounting_logic, tasks_version("title")
)
_COMPARED = [metrics, parsed_labels, ensemble_metrics, ensemble_labels, adjudication.adjudicated_gold, analysis_settings]
_ACCOUNTING = AssetKey("reasoning_accounting")  # defs/accounting.py, which reads the parsed labels


@multi_asset(
    outs={
        "comparison": AssetOut(
            group_name="evaluation", kinds={"pandas", "parquet"}, tags=DOMAIN_TAGS, code_version=comparison_code_version,
            # New adjudicated labels, or new analysis settings, re-run the metrics, and those the comparison: once.
            automation_condition=reevaluate_when_changed(
                not_updates=ADJUDICATED_GOLD | ANALYSIS_SETTINGS, may_be_missing=ADJUDICATED_GOLD | ANALYSIS_SETTINGS
            ),
            description="The paper's Table 3 for every registered model and ensemble, with invalid counts, paired F1 "
            "differences with intervals, McNemar's test adjusted across tasks (Holm by default), paired AUROC differences, "
            "prompt sensitivity and the results on adjudicated gold labels, at the analysis settings of the file (a launched "
            "run may override them). Each table is written as CSV and Parquet in reports/, with the settings it was "
            "computed with (reports/settings.json), which every heading states.",
        ),
        "report": AssetOut(
            group_name="evaluation", kinds={"html"}, tags=DOMAIN_TAGS, code_version=report_code_version,
            automation_condition=reevaluate_when_changed(),
            description="The comparison as people read it: a self-contained HTML report (reports/report.html, opens "
            "offline), the forest plot and each task's score curves as PNG; its value lists the files it wrote.",
        ),
    },
    deps=[*_COMPARED, _ACCOUNTING],
    internal_asset_deps={
        "comparison": {asset.key for asset in _COMPARED},
        "report": {AssetKey("comparison"), metrics.key, parsed_labels.key, ensemble_metrics.key, ensemble_labels.key, _ACCOUNTING},
    },
)
def comparison(context: AssetExecutionContext, config: AnalysisConfig, storage: AssetStorage):
    """Computes the comparison (`core.comparison.compare`), writes its tables, then renders the
    report from the same result: one step, two assets."""
    models, ensembles = _evaluated(context.instance)
    stored_metrics = _stored_frames(storage, "metrics", models, ensembles)
    if not stored_metrics:
        raise RuntimeError("no metrics are materialized yet: materialize the metrics asset first")
    all_metrics = pd.concat(stored_metrics.values(), ignore_index=True)
    labels, answers = _labels_by_model_and_task(storage, models, ensembles)
    analysis = config.settings(context, output_name="comparison")
    registry = load_registry(paths.registry_path())
    setups = {name: (spec.base_model, spec.prompt_setup) for name, spec in registry.items() if spec.prompt_setup is not None}
    try:
        result = comparison_logic.compare(
            all_metrics, labels, analysis, setups=setups, answers=answers, adjudicated=_adjudicated_results(labels, storage, analysis),
        )
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    tasks = comparison_logic.task_order(all_metrics["task"])
    evaluated = f"{len(stored_metrics)} of {(len(models) + len(ensembles)) * len(TASK_KEYS)}"
    yield Output(result.table3, "comparison", metadata=_write_tables(result, storage, analysis, tasks, evaluated))
    provenance = _provenance(context.instance, registry, sorted(all_metrics["model"].unique()), tasks)
    files, metadata = _write_report(result, all_metrics, labels, tasks, provenance, storage, _reasoning(storage, registry, models))
    context.log.info(f"report: {storage.url('reports/report.html')}")
    yield Output(files, "report", metadata=metadata)


def _adjudicated_results(labels: pd.DataFrame, storage: AssetStorage, analysis) -> comparison_logic.AdjudicatedResults | None:
    """The results on the adjudicated gold labels of every task whose stored adjudicated_gold
    holds a verdict, with the verdicts of those tasks (for the reviewers' agreement)."""
    stored = {task: storage.read("adjudicated_gold", [task]) for task in TASK_KEYS if storage.exists("adjudicated_gold", [task])}
    judged = [task for task, frame in stored.items() if (frame["verdict"] != "").any()]
    return comparison_logic.adjudicated_results(labels, stored, adjudication.verdicts(judged), analysis)


def _write_tables(result, storage: AssetStorage, analysis, tasks: list[str], evaluated: str) -> dict:
    """The comparison's tables in reports/ (CSV and Parquet) with reports/settings.json; the
    metadata that shows them in the UI."""
    for name, frame in result.tables().items():
        storage.write_bytes(f"reports/{name}.csv", frame.to_csv(index=False).encode("utf-8"))
        storage.write_bytes(f"reports/{name}.parquet", frame.to_parquet(index=False))
    storage.write_bytes("reports/settings.json", json.dumps(result.settings, indent=1).encode("utf-8"))
    headings = result.headings
    shown_differences = comparison_logic.differences_table(result.f1_differences)
    sensitivity = result.prompt_sensitivity
    return {
        "table3": MetadataValue.md(
            f"{headings['table3']}. {report_logic.TABLE3_LAYOUT}\n\n{report_logic.table3_by_model(result.table3).to_markdown(index=False)}"
        ),
        "f1_differences": MetadataValue.md(f"{headings['f1_differences']}\n\n{shown_differences.to_markdown(index=False)}"),
        "prompt_sensitivity": MetadataValue.md(sensitivity.to_markdown(index=False) if len(sensitivity) else "no model has several prompt setups"),
        "reports": MetadataValue.path(storage.url("reports")),
        "evaluated_partitions": evaluated,
        "pairs": analysis.pairs if analysis.pairs == "every" else f"each against {analysis.reference}",
        "correction": comparison_logic.CORRECTION_NAMES[analysis.correction],
        "settings": MetadataValue.json(result.settings),
        "labels_changed_by_adjudication": MetadataValue.json(result.adjudicated.labels_changed if result.adjudicated else {}),
        "review_pages": MetadataValue.md(
            "Each task's items beside every model's answer (`make review`): "
            + ", ".join(f"[{TASKS[task].title}]({paths.review_url()}/tasks/{task})" for task in tasks)
        ),
    } | ({"auroc_differences": MetadataValue.md(
        f"{headings['auroc_differences']}\n\n{comparison_logic.auroc_differences_table(result.auroc_differences).to_markdown(index=False)}"
    )} if len(result.auroc_differences) else {})


def _reasoning(storage: AssetStorage, registry: dict, models: list[str]) -> tuple[pd.DataFrame | None, bytes | None]:
    """The stored reasoning accounting of the models, and the plot of reasoning length by right and
    wrong answers of the reasoning models (None where there is none)."""
    stored = storage.read_model_task_frames("reasoning_accounting", models)
    accounting = pd.concat(stored.values(), ignore_index=True) if stored else None
    thinking = [model for model in models if getattr(registry.get(model), "reasoning", False)]
    items = [
        accounting_logic.item_tokens(storage.read("predictions", [model, task]), labels).assign(model=model)
        for (model, task), labels in storage.read_model_task_frames("parsed_labels", thinking).items()
    ]
    return accounting, accounting_logic.reasoning_length_plot(pd.concat(items, ignore_index=True)) if items else None


def _write_report(result, all_metrics: pd.DataFrame, labels: pd.DataFrame, tasks: list[str], provenance, storage: AssetStorage, reasoning):
    """The forest plot, the score curves of the models that give scores, the reasoning accounting
    and the HTML report, in reports/; the table of the files written, and the metadata that shows
    them in the UI."""
    headings = result.headings
    accounting, reasoning_png = reasoning
    plot = comparison_logic.forest_plot(all_metrics)
    # ROC and precision-recall curves and the reliability diagram of the models that give scores
    curves = {task: comparison_logic.score_curves_plot(labels, task) for task in tasks if comparison_logic.scored_models(labels, task)}
    shown_auroc_differences = comparison_logic.auroc_differences_table(result.auroc_differences)
    adjudicated = result.adjudicated
    html = report_logic.render_report(
        table3=result.table3, differences=comparison_logic.differences_table(result.f1_differences), labels=labels,
        sensitivity=result.prompt_sensitivity, forest_png=plot, provenance=provenance, headings=headings,
        auroc_differences=shown_auroc_differences if len(result.auroc_differences) else None, score_curves=curves or None,
        adjudication=adjudicated and report_logic.adjudication_tables(
            adjudicated.original, adjudicated.adjudicated, adjudicated.summary, adjudicated.reviewers
        ),
        sampled=comparison_logic.sampled_table(result.sampled),
        sampled_differences=comparison_logic.sampled_differences_table(result.sampled_differences),
        accounting=None if accounting is None else accounting_logic.accounting_table(accounting), reasoning_png=reasoning_png,
    )
    written = {"reports/f1_forest.png": plot, **{f"reports/score_curves_{task}.png": png for task, png in curves.items()},
               "reports/report.html": html.encode("utf-8")}
    if accounting is not None:
        written["reports/accounting.csv"] = accounting.to_csv(index=False).encode("utf-8")
    if reasoning_png is not None:
        written["reports/reasoning_length.png"] = reasoning_png
    files = pd.DataFrame([{"file": name, "url": storage.write_bytes(name, data), "bytes": len(data)} for name, data in written.items()])
    image = base64.b64encode(plot).decode("ascii")
    metadata = {
        "report": MetadataValue.path(storage.url("reports/report.html")),
        "forest_plot": MetadataValue.md(f"{headings['forest_plot']}\n\n![F1 by task and model](data:image/png;base64,{image})"),
        "forest_plot_file": MetadataValue.path(storage.url("reports/f1_forest.png")),
    } | {
        f"score_curves_{task}": MetadataValue.md(
            f"{headings['score_curves']}\n\n![{task}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
        )
        for task, png in curves.items()
    }
    return files, metadata


@asset(
    partitions_def=task_partitions,
    deps=[AssetDep(parsed_labels, partition_mapping=MultiToSingleDimensionPartitionMapping("task")),
          AssetDep(ensemble_labels, partition_mapping=MultiToSingleDimensionPartitionMapping("task"))],
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    automation_condition=reevaluate_when_changed(),
    code_version=code_version(error_analysis_logic, labels_logic),
    backfill_policy=BackfillPolicy.single_run(),
    description="One row per test item of the task: the gold label, each model's (and ensemble's) label or invalid reason, and "
    "which models got it right; with the counts of items all models get right, none does, and only one gets "
    "wrong or right. Ids only; the item's text only where the dataset allows previews.",
)
def error_analysis(context: AssetExecutionContext, storage: AssetStorage):
    tasks = list(context.partition_keys)
    models, ensembles = _evaluated(context.instance)
    tables = {task: _error_analysis(context, storage, task, models, ensembles) for task in tasks}
    return tables if len(tasks) > 1 else tables[tasks[0]]


def _error_analysis(context: AssetExecutionContext, storage: AssetStorage, task: str, models: list[str], ensembles: list[str]) -> pd.DataFrame:
    frames = [
        labels_logic.majority_labels(storage.read(asset, [model, task])).assign(model=model)
        for asset, names in (("parsed_labels", models), ("ensemble_labels", ensembles))
        for model in names if storage.exists(asset, [model, task])
    ]
    if not frames:
        raise RuntimeError(f"no parsed labels of any model on {task} yet: materialize parsed_labels first")
    labels = pd.concat(frames, ignore_index=True)
    table = error_analysis_logic.item_table(labels)
    evaluated = sorted(labels["model"].unique())
    counts = error_analysis_logic.outcome_counts(table, evaluated)
    if dataset_source(task, DatasetConfig()).preview:  # the user allowed this dataset's text to be shown
        texts = storage.read("split", [task]).set_index("id")["text"]
        table.insert(2, "text", texts.reindex(table["id"]).to_numpy())
    context.add_asset_metadata(
        frame_metadata(table)
        | {"models": MetadataValue.json(evaluated), "outcomes": MetadataValue.md(pd.Series(counts).to_frame("items").to_markdown())}
        | {"review_page": MetadataValue.url(f"{paths.review_url()}/tasks/{task}")}
        | {key.replace(" ", "_"): value for key, value in counts.items()},
        partition_key=task,
    )
    return table
