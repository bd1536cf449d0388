"""Adjudicated gold labels in the asset graph: the reviewers' verdicts of each task, observed
from the response cache's database (its data version changes exactly when an item's adjudicated
label or verdict does), and the task's gold labels after them (ids and labels only).
The verdicts' comments never leave the database."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    DataVersion,
    DataVersionsByPartition,
    MetadataValue,
    asset,
    observable_source_asset,
)

from medassets import paths
from medassets.core import adjudication as adjudication_logic
from medassets.defs.conditions import reevaluate_when_changed
from medassets.defs.io import AssetStorage
from medassets.defs.metadata import DOMAIN_TAGS, code_version
from medassets.defs.partitions import task_partitions
from medassets.tasks import TASK_KEYS


def verdicts(tasks: list[str]) -> dict[str, list[adjudication_logic.Adjudication]]:
    """The reviewers' verdicts on each of the tasks, from the response cache's database."""
    store = adjudication_logic.open_adjudications(paths.postgres_url(), paths.cache_path())
    try:
        return {task: store.for_task(task) for task in tasks}
    finally:
        store.close()


def verdict_versions() -> dict[str, str]:
    """The labels version of each task some reviewer has judged (verdicts are never removed,
    so a task once here stays here)."""
    return {task: adjudication_logic.labels_version(judged) for task, judged in verdicts(TASK_KEYS).items() if judged}


@observable_source_asset(
    partitions_def=task_partitions,
    group_name="evaluation",
    description="The reviewers' verdicts on each task's gold labels (the review page, `make review`), in the "
    "response cache's database; the data version of a task is a hash of its items' current verdicts and labels. "
    "Observed when they change (the `review_verdicts` sensor); a task nobody has judged is not observed.",
)
def adjudications(context) -> DataVersionsByPartition:
    return DataVersionsByPartition({task: DataVersion(version) for task, version in verdict_versions().items()})


@asset(
    partitions_def=task_partitions,
    deps=[adjudications],
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    automation_condition=reevaluate_when_changed(),
    code_version=code_version(adjudication_logic),
    description="Each test item's gold label after adjudication: id, original, label (the adjudicated gold) and "
    "verdict (empty when none). Ids and labels only. Metrics use it with `gold: adjudicated` (analysis settings); the "
    "comparison reports results on it beside the original ones.",
)
def adjudicated_gold(context: AssetExecutionContext, split: pd.DataFrame) -> pd.DataFrame:
    task = context.partition_key
    test = split[split["part"] == "test"].sort_values("id")
    judged = verdicts([task])[task]
    known = set(test["id"])
    unknown = sorted({verdict.item_id for verdict in judged} - known)
    if unknown:
        context.log.warning(f"{task}: {len(unknown)} adjudicated items are not in the test split and are left out: {unknown[:10]}")
    frame = adjudication_logic.adjudicated_gold(
        test["id"].astype(str).tolist(), test["label"].tolist(), [verdict for verdict in judged if verdict.item_id in known]
    )
    agreement = adjudication_logic.original_agreement(frame)
    reviewers = adjudication_logic.reviewer_agreement(judged, dict(zip(test["id"].astype(str), test["label"].astype(int))))
    context.add_output_metadata({
        "labels_changed": agreement["changed"],
        "ambiguous": int((frame["verdict"] == adjudication_logic.AMBIGUOUS).sum()),
        "adjudicated_items": int((frame["verdict"] != "").sum()),
        "kappa_original_vs_adjudicated": None if agreement["kappa"] != agreement["kappa"] else round(agreement["kappa"], 4),
        "reviewer_kappa": MetadataValue.md(reviewers.to_markdown(index=False) if len(reviewers) else "no item judged by two reviewers"),
    })
    return frame


def gold_labels(labels: pd.DataFrame, gold: str, task: str, storage: AssetStorage) -> tuple[pd.DataFrame, int]:
    """`labels` (id, gold, label...) with its gold column as the analysis settings' `gold` says:
    the `original` labels, or the `adjudicated` ones of the stored adjudicated_gold partition (a
    task nobody has judged has none, and keeps its original labels); and how many gold labels
    that changed."""
    if gold == "original" or not storage.exists("adjudicated_gold", [task]):
        return labels, 0
    try:
        rescored = adjudication_logic.with_adjudicated_gold(labels.assign(task=task), {task: storage.read("adjudicated_gold", [task])})
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    return rescored.drop(columns="task"), int((rescored["gold"].to_numpy() != labels["gold"].to_numpy()).sum())
