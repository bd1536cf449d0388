"""Reasoning and cost accounting per (task, model): tokens, answers cut at max_tokens, invalid
answers by reason, generation time and GPU-seconds (core/accounting.py)."""

import base64

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetRecordsFilter, BackfillPolicy, MetadataValue, asset

from medassets.core import accounting as accounting_logic
from medassets.core import metrics as metrics_logic
from medassets.defs.conditions import reevaluate_when_changed
from medassets.defs.io import frames_by_partition
from medassets.defs.metadata import DOMAIN_TAGS, code_version, column_lineage
from medassets.defs.partitions import model_and_task, task_model_partitions

# How far back the predictions' materializations are searched for the one that generated its answers.
_GENERATING_RUNS_SEARCHED = 20


def _generation_cost(context: AssetExecutionContext, key: str) -> accounting_logic.GenerationCost | None:
    """The cost of the latest predictions materialization of partition `key` that generated answers
    with the answer key in effect (a later one may have found every answer cached, and timed nothing)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("predictions"), asset_partitions=[key]), limit=_GENERATING_RUNS_SEARCHED
    ).records
    found = [{name: getattr(value, "value", value) for name, value in record.asset_materialization.metadata.items()} for record in records]
    current = found[0].get("answer_key") if found else None
    return next(
        (cost for metadata in found if metadata.get("answer_key") == current and (cost := accounting_logic.generation_cost(metadata))), None
    )


@asset(
    partitions_def=task_model_partitions,
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    automation_condition=reevaluate_when_changed(),
    code_version=code_version(accounting_logic, metrics_logic),  # its F1 is the metrics' own
    backfill_policy=BackfillPolicy.single_run(),
    description="A model's reasoning and cost on a task, in one row: prompt, reasoning and answer tokens (median and "
    "90th percentile), answers cut at max_tokens and their share, F1 on the answers that finished against all (an invalid "
    "answer counted negative), invalid answers by reason, and generation seconds and GPU-seconds (time x GPUs) per 1,000 "
    "items, from the latest predictions run that generated them (blank where no GPU was used). Its metadata has the "
    "table and a plot of reasoning length by right and wrong answers.",
)
def reasoning_accounting(context: AssetExecutionContext, predictions, parsed_labels):
    keys = list(context.partition_keys)
    predictions, parsed_labels = frames_by_partition(predictions, keys), frames_by_partition(parsed_labels, keys)
    rows = {key: _accounting(context, key, predictions[key], parsed_labels[key]) for key in keys}
    return rows if len(keys) > 1 else rows[keys[0]]


def _accounting(context: AssetExecutionContext, key: str, predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    model, task = model_and_task(key)
    items = accounting_logic.item_tokens(predictions, labels)
    cost = _generation_cost(context, key)
    if cost is None:
        context.log.info(f"{model} on {task}: no predictions run that generated these answers is recorded; generation time left blank")
    frame = accounting_logic.accounting_frame([accounting_logic.accounting_row(task, model, items, cost)])
    plot = accounting_logic.reasoning_length_plot(items.assign(model=model), title=f"Reasoning length of {model} on {task}")
    row = frame.iloc[0]
    context.add_asset_metadata({
        "accounting": MetadataValue.md(accounting_logic.accounting_table(frame).to_markdown(index=False)),
        "reasoning_length_plot": MetadataValue.md(
            f"![reasoning length by right and wrong answers](data:image/png;base64,{base64.b64encode(plot).decode('ascii')})"
        ),
        "cut_at_max_tokens": int(row["cut_at_max_tokens"]),
        "invalid_reasoning_cut_off": int(row["invalid_reasoning_cut_off"]),
        **{
            column: float(row[column]) for column in ("reasoning_tokens_median", "reasoning_tokens_p90", "f1_finished", "f1_all",
                                                       "generation_s_per_1000", "gpu_s_per_1000")
            if not pd.isna(row[column])
        },
        "dagster/column_lineage": column_lineage({
            **{f"prompt_tokens_{statistic}": {"predictions": ["prompt_tokens"]} for statistic in ("median", "p90")},
            **{f"{kind}_tokens_{statistic}": {"predictions": ["completion_tokens", "reasoning_tokens"], "parsed_labels": ["invalid_reason"]}
               for kind in ("reasoning", "answer") for statistic in ("median", "p90")},
            "cut_at_max_tokens": {"predictions": ["finish_reason"]},
            "f1_finished": {"predictions": ["finish_reason"], "parsed_labels": ["gold", "label"]},
            "f1_all": {"parsed_labels": ["gold", "label"]},
        }),
    }, partition_key=key)
    return frame
