"""Evaluation assets: parsed labels and metrics per (task, model), and the comparison of all models."""

import base64
from typing import Literal

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, Config, MetadataValue, MultiToSingleDimensionPartitionMapping, asset
from pydantic import Field

from medassets import paths
from medassets.core import comparison as comparison_logic
from medassets.core import metrics as metrics_logic
from medassets.core import parsing
from medassets.core.metrics import binary_report
from medassets.core.parsing import parse_answer
from medassets.core.prompts import variant_prompts
from medassets.core.registry import registered_model
from medassets.defs.conditions import reevaluate_when_changed
from medassets.defs.io import AssetStorage
from medassets.defs.metadata import DOMAIN_TAGS, code_version, column_lineage, frame_metadata, latest_metadata
from medassets.defs.partitions import model_and_task, model_partitions, task_model_partitions
from medassets.tasks import TASK_KEYS

_METRIC_FIELDS = ["n", "tp", "fp", "fn", "tn", "invalid", "invalid_rate"] + [
    f"{metric}{suffix}" for metric in metrics_logic.METRICS for suffix in ("", "_low", "_high")
]


parsed_labels_code_version = code_version(parsing)


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
    description="Precision, recall and F1 of the positive class with 95% percentile bootstrap intervals, "
    "the invalid count and the confusion matrix.",
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
            "invalid_policy": report["invalid_policy"],
            "n_resamples": report["n_resamples"],
            "notes": MetadataValue.json(report["notes"]),
            "produced_by": MetadataValue.json(produced_by),
            "dagster/column_lineage": column_lineage(
                {metric: {"parsed_labels": ["gold", "label"]} for metric in ("precision", "recall", "f1", "invalid")}
            ),
        }
    )
    return pd.DataFrame([{"task": task, "model": model, **report_row(report), "invalid_policy": report["invalid_policy"]}])


@asset(
    deps=[metrics, parsed_labels],
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    automation_condition=reevaluate_when_changed(),
    code_version=code_version(comparison_logic, metrics_logic),
    description="The paper's Table 3 for every registered model, with invalid counts, paired F1 "
    "differences with intervals, and a forest plot. Written as CSV, Parquet and PNG.",
)
def comparison(context: AssetExecutionContext, config: BootstrapConfig, storage: AssetStorage) -> pd.DataFrame:
    models = sorted(context.instance.get_dynamic_partitions(model_partitions.name))
    stored_metrics = storage.read_model_task_frames("metrics", models)
    if not stored_metrics:
        raise RuntimeError("no metrics are materialized yet: materialize the metrics asset first")
    all_metrics = pd.concat(stored_metrics.values(), ignore_index=True)
    labels = pd.concat(
        [frame.assign(model=model, task=task) for (model, task), frame in storage.read_model_task_frames("parsed_labels", models).items()],
        ignore_index=True,
    )
    table = comparison_logic.table3(all_metrics)
    differences = comparison_logic.paired_f1_differences(
        labels, n_resamples=config.n_resamples, confidence=config.confidence, seed=config.seed, invalid=config.invalid
    )
    for name, frame in (("table3", table), ("f1_differences", differences)):
        storage.write_bytes(f"reports/{name}.csv", frame.to_csv(index=False).encode("utf-8"))
        storage.write_bytes(f"reports/{name}.parquet", frame.to_parquet(index=False))
    plot = comparison_logic.forest_plot(all_metrics)
    plot_url = storage.write_bytes("reports/f1_forest.png", plot)
    image = base64.b64encode(plot).decode("ascii")
    expected = len(models) * len(TASK_KEYS)
    context.add_output_metadata(
        {
            "table3": MetadataValue.md(table.to_markdown(index=False)),
            "f1_differences": MetadataValue.md(comparison_logic.differences_table(differences).to_markdown(index=False)),
            "forest_plot": MetadataValue.md(f"![F1 by task and model](data:image/png;base64,{image})"),
            "forest_plot_file": MetadataValue.path(plot_url),
            "reports": MetadataValue.path(storage.url("reports")),
            "evaluated_partitions": f"{len(stored_metrics)} of {expected}",
        }
    )
    return table
