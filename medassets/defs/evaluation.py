"""Evaluation assets: parsed labels and metrics per (task, model), and the comparison of all models."""

import base64
import json
from typing import Literal

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    Config,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    asset,
)
from pydantic import Field

from medassets import paths
from medassets.core import comparison as comparison_logic
from medassets.core import error_analysis as error_analysis_logic
from medassets.core import metrics as metrics_logic
from medassets.core import parsing
from medassets.core import report as report_logic
from medassets.core.metrics import binary_report
from medassets.core.parsing import parse_answer
from medassets.core.prompts import templates_version, variant_prompts
from medassets.core.registry import load_registry, registered_model
from medassets.defs.data import DatasetConfig, dataset_source
from medassets.defs.conditions import reevaluate_when_changed
from medassets.defs.io import AssetStorage
from medassets.defs.metadata import DOMAIN_TAGS, code_version, column_lineage, frame_metadata, latest_metadata
from medassets.defs.partitions import model_and_task, model_partitions, partition_key, task_model_partitions, task_partitions
from medassets.tasks import TASK_KEYS, tasks_version

_METRIC_FIELDS = ["n", "tp", "fp", "fn", "tn", "invalid", "invalid_rate"] + [
    f"{metric}{suffix}" for metric in metrics_logic.METRICS for suffix in ("", "_low", "_high")
]


parsed_labels_code_version = code_version(parsing, tasks_version("positive_phrase", "negative_phrases"))


class BootstrapConfig(Config):
    """How the confidence intervals are drawn and invalid answers scored."""

    n_resamples: int = Field(
        metrics_logic.N_RESAMPLES, gt=0, description="Bootstrap resamples per interval; 1,000 as in the paper (100,000 is fast)."
    )
    confidence: float = Field(metrics_logic.CONFIDENCE, gt=0, lt=1, description="Confidence level of the intervals; default 0.95.")
    seed: int = Field(0, description="Seed of the resampling, so intervals are reproducible; default 0.")
    invalid: Literal["negative", "exclude"] = Field(
        "negative", description="An invalid answer counts as a negative prediction (`negative`, the default) or is left out (`exclude`)."
    )


@asset(
    partitions_def=task_model_partitions,
    ins={"prompts": AssetIn(partition_mapping=MultiToSingleDimensionPartitionMapping("task"))},
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    automation_condition=reevaluate_when_changed(),
    code_version=parsed_labels_code_version,
    description="Each answer parsed to 1, 0 or invalid with the task's answer phrases, with the answer "
    "text, the reasoning and, when invalid, why.",
)
def parsed_labels(context: AssetExecutionContext, predictions: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    model, task = model_and_task(context.partition_key)
    reasoning_model = registered_model(model, paths.registry_path()).reasoning
    prompts = variant_prompts(prompts)
    parsed = [
        parse_answer(task, text, reasoning, reasoning_model=reasoning_model)
        for text, reasoning in zip(predictions["text"], predictions["reasoning"].where(predictions["reasoning"].notna(), None))
    ]
    gold = prompts.set_index("id").loc[predictions["id"], "label"].to_numpy()
    frame = pd.DataFrame(
        {
            "id": predictions["id"],
            "gold": gold,
            "label": [-1 if p.label is None else p.label for p in parsed],
            "answer": [p.answer for p in parsed],
            "reasoning": [p.reasoning for p in parsed],
            "invalid_reason": [p.invalid_reason for p in parsed],
        }
    ).astype({"id": "string", "answer": "string", "reasoning": "string", "invalid_reason": "string"})
    reasons = frame["invalid_reason"].value_counts().to_dict()
    context.add_output_metadata(
        frame_metadata(frame.drop(columns="gold"))
        | {
            "invalid": int((frame["label"] == -1).sum()),
            "invalid_reasons": MetadataValue.json(reasons),
            "dagster/column_lineage": column_lineage({
                "id": {"predictions": ["id"]},
                "gold": {"prompts": ["label"]},
                "label": {"predictions": ["text"]},
                "answer": {"predictions": ["text"]},
                "reasoning": {"predictions": ["text", "reasoning"]},
                "invalid_reason": {"predictions": ["text"]},
            }),
        }
    )
    return frame


def report_row(report: dict) -> dict:
    return {field: report[field] for field in _METRIC_FIELDS}


@asset(
    partitions_def=task_model_partitions,
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    automation_condition=reevaluate_when_changed(),
    code_version=code_version(metrics_logic),
    description="Precision, recall and F1 of the positive class with percentile bootstrap intervals at the "
    "run config's confidence (95% by default), the invalid count and the confusion matrix; the confidence, "
    "invalid-answer policy and resamples are recorded in the frame and its metadata.",
)
def metrics(context: AssetExecutionContext, config: BootstrapConfig, parsed_labels: pd.DataFrame) -> pd.DataFrame:
    model, task = model_and_task(context.partition_key)
    report = binary_report(
        parsed_labels["gold"], parsed_labels["label"], n_resamples=config.n_resamples,
        confidence=config.confidence, seed=config.seed, invalid=config.invalid,
    )
    for note in report["notes"]:
        context.log.warning(f"{model} on {task}: {note}")
    confusion = pd.DataFrame(report["confusion"], index=["true 1", "true 0"], columns=["predicted 1", "predicted 0", "invalid"])
    # What produced these numbers, to walk back from a metric in the UI.
    produced_by = {
        "model_revision": latest_metadata(context.instance, "predictions", context.partition_key).get("model_revision"),
        "prompt_template_version": latest_metadata(context.instance, "prompts", task).get("template_version"),
        "split_seed": latest_metadata(context.instance, "split", task).get("seed"),
        "parser_version": parsed_labels_code_version,
    }
    context.add_output_metadata(
        {key: round(float(value), 4) for key, value in report_row(report).items()}
        | {
            "F1": comparison_logic.interval_cell(report["f1"], report["f1_low"], report["f1_high"]),
            "confusion_matrix": MetadataValue.md(confusion.to_markdown()),
            "confidence": report["confidence"],
            "invalid_policy": report["invalid_policy"],
            "n_resamples": report["n_resamples"],
            "notes": MetadataValue.json(report["notes"]),
            "produced_by": MetadataValue.json(produced_by),
            "dagster/column_lineage": column_lineage(
                {metric: {"parsed_labels": ["gold", "label"]} for metric in ("precision", "recall", "f1", "invalid")}
            ),
        }
    )
    settings = {setting: report[setting] for setting in metrics_logic.SETTINGS}
    return pd.DataFrame([{"task": task, "model": model, **report_row(report), **settings}])


class ComparisonConfig(BootstrapConfig):
    """The bootstrap settings, and which pairs of models are tested."""

    pairs: Literal["every", "reference"] = Field(
        "every", description="Test `every` pair of models (the default; pairs grow with the square of the models) "
        "or each model against the `reference`.",
    )
    reference: str | None = Field(None, description="The model every other is compared with when `pairs` is `reference`.")
    correction: Literal["holm", "bh"] = Field(
        "holm", description="How McNemar's p-values are adjusted across the tasks of a pair: `holm` (family-wise "
        "error, the default) or `bh` (Benjamini-Hochberg, false discovery rate).",
    )


def _labels_by_model_and_task(storage: AssetStorage, models) -> pd.DataFrame:
    frames = storage.read_model_task_frames("parsed_labels", models)
    return pd.concat([frame.assign(model=model, task=task) for (model, task), frame in frames.items()], ignore_index=True)


def _provenance(instance, registry: dict, models: list[str], tasks: list[str]) -> dict[str, pd.DataFrame]:
    """What produced every number: model revisions and settings, prompt wordings, split seeds, code versions."""
    model_rows = []
    for model in models:
        generated = next(
            (found for task in tasks if (found := latest_metadata(instance, "predictions", partition_key(model, task)))), {}
        )
        members = generated.get("members")
        vote = f"{generated.get('rule')} vote of {', '.join(members)}" if members else ""
        model_rows.append({
            "Model": model, "Backend": generated.get("backend", ""), "Revision": generated.get("model_revision", ""),
            "Setup": (registry[model].prompt_setup if model in registry else None) or vote,
            "vLLM": generated.get("vllm_version", ""), "Device": generated.get("device", ""),
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
        {"Logic": "metrics", "Version": code_version(metrics_logic)},
        {"Logic": "comparison", "Version": comparison_code_version},
        {"Logic": "prompt templates", "Version": templates_version()},
    ])
    return {"models": pd.DataFrame(model_rows), "tasks": pd.DataFrame(task_rows), "code versions": versions}


comparison_code_version = code_version(
    comparison_logic, metrics_logic, report_logic, error_analysis_logic, tasks_version("title")
)


@asset(
    deps=[metrics, parsed_labels],
    group_name="evaluation",
    kinds={"pandas", "parquet", "html"},
    tags=DOMAIN_TAGS,
    automation_condition=reevaluate_when_changed(),
    code_version=comparison_code_version,
    description="The paper's Table 3 for every registered model, with invalid counts, paired F1 differences "
    "with intervals, McNemar's test adjusted across tasks (Holm by default), a forest plot, and a self-contained "
    "HTML report. Written as CSV, Parquet, PNG and HTML, with the settings each table was computed with "
    "(reports/settings.json), which every heading states.",
)
def comparison(context: AssetExecutionContext, config: ComparisonConfig, storage: AssetStorage) -> pd.DataFrame:
    models = sorted(context.instance.get_dynamic_partitions(model_partitions.name))
    stored_metrics = storage.read_model_task_frames("metrics", models)
    if not stored_metrics:
        raise RuntimeError("no metrics are materialized yet: materialize the metrics asset first")
    all_metrics = pd.concat(stored_metrics.values(), ignore_index=True)
    labels = _labels_by_model_and_task(storage, models)
    table = comparison_logic.table3(all_metrics)
    differences = comparison_logic.paired_f1_differences(
        labels, n_resamples=config.n_resamples, confidence=config.confidence, seed=config.seed, invalid=config.invalid,
        pairs=config.pairs, reference=config.reference, correction=config.correction,
    )
    shown_differences = comparison_logic.differences_table(differences)
    settings = comparison_logic.comparison_settings(
        all_metrics, n_resamples=config.n_resamples, confidence=config.confidence, seed=config.seed,
        invalid=config.invalid, correction=config.correction, pairs=config.pairs, reference=config.reference,
    )
    headings = comparison_logic.headings(settings)
    registry = load_registry(paths.registry_path())
    setups = {name: (spec.base_model, spec.prompt_setup) for name, spec in registry.items() if spec.prompt_setup is not None}
    sensitivity = comparison_logic.prompt_sensitivity(all_metrics, setups)
    for name, frame in (("table3", table), ("f1_differences", differences), ("prompt_sensitivity", sensitivity)):
        storage.write_bytes(f"reports/{name}.csv", frame.to_csv(index=False).encode("utf-8"))
        storage.write_bytes(f"reports/{name}.parquet", frame.to_parquet(index=False))
    storage.write_bytes("reports/settings.json", json.dumps(settings, indent=1).encode("utf-8"))
    plot = comparison_logic.forest_plot(all_metrics)
    plot_url = storage.write_bytes("reports/f1_forest.png", plot)
    tasks = [task for task in TASK_KEYS if task in set(all_metrics["task"])]
    report = report_logic.render_report(
        table3=table, differences=shown_differences, labels=labels, sensitivity=sensitivity, forest_png=plot,
        provenance=_provenance(context.instance, registry, sorted(all_metrics["model"].unique()), tasks),
        headings=headings,
    )
    report_url = storage.write_bytes("reports/report.html", report.encode("utf-8"))
    context.log.info(f"report: {report_url}")
    image = base64.b64encode(plot).decode("ascii")
    expected = len(models) * len(TASK_KEYS)
    context.add_output_metadata(
        {
            "table3": MetadataValue.md(f"{headings['table3']}\n\n{table.to_markdown(index=False)}"),
            "f1_differences": MetadataValue.md(f"{headings['f1_differences']}\n\n{shown_differences.to_markdown(index=False)}"),
            "prompt_sensitivity": MetadataValue.md(sensitivity.to_markdown(index=False) if len(sensitivity) else "no model has several prompt setups"),
            "forest_plot": MetadataValue.md(f"{headings['forest_plot']}\n\n![F1 by task and model](data:image/png;base64,{image})"),
            "forest_plot_file": MetadataValue.path(plot_url),
            "report": MetadataValue.path(report_url),
            "reports": MetadataValue.path(storage.url("reports")),
            "evaluated_partitions": f"{len(stored_metrics)} of {expected}",
            "pairs": config.pairs if config.pairs == "every" else f"each against {config.reference}",
            "correction": comparison_logic.CORRECTION_NAMES[config.correction],
            "settings": MetadataValue.json(settings),
        }
    )
    return table


@asset(
    partitions_def=task_partitions,
    deps=[AssetDep(parsed_labels, partition_mapping=MultiToSingleDimensionPartitionMapping("task"))],
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    automation_condition=reevaluate_when_changed(),
    code_version=code_version(error_analysis_logic),
    description="One row per test item of the task: the gold label, each model's label or invalid reason, and "
    "which models got it right; with the counts of items all models get right, none does, and only one gets "
    "wrong or right. Ids only; the item's text only where the dataset allows previews.",
)
def error_analysis(context: AssetExecutionContext, storage: AssetStorage) -> pd.DataFrame:
    task = context.partition_key
    models = sorted(context.instance.get_dynamic_partitions(model_partitions.name))
    frames = [
        storage.read("parsed_labels", [model, task]).assign(model=model)
        for model in models if storage.exists("parsed_labels", [model, task])
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
    context.add_output_metadata(
        frame_metadata(table)
        | {"models": MetadataValue.json(evaluated), "outcomes": MetadataValue.md(pd.Series(counts).to_frame("items").to_markdown())}
        | {key.replace(" ", "_"): value for key, value in counts.items()}
    )
    return table
