"""Answers turned into labels, in one place: free text parsed by the task's answer phrases
(`parsing.parse_answer`), a scored answer taken as the engine gave it (its score, and the label
of the likelier side), the cut-off that maximizes F1 on the scores of the train rows the
predictions stage scored (never a test row), and one label per item from its samples' labels
(`majority_labels`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medassets.core.answers import part_of, samples_of
from medassets.core.metrics import learn_threshold
from medassets.core.parsing import parse_answer

INVALID = -1
# One row per test item (`majority_labels`), as metrics, ensembles and paired tests read them.
ITEM_LABEL_COLUMNS = ["id", "gold", "label", "answer", "reasoning", "invalid_reason", "score", "learned_threshold"]
# One row per test answer, of each item's samples (the parsed labels asset).
LABEL_COLUMNS = ["id", "sample", *ITEM_LABEL_COLUMNS[1:]]


def learned_threshold(train_labels, train_scores) -> float:
    """The cut-off that maximizes F1 on train rows; NaN without train rows or with one class only."""
    labels = np.asarray(train_labels, dtype=int)
    if len(set(labels.tolist())) < 2:
        return math.nan
    return learn_threshold(labels, np.asarray(train_scores, dtype=float))


def label_answers(task: str, predictions: pd.DataFrame, gold: pd.Series, *, reasoning_model: bool) -> pd.DataFrame:
    """One row per test answer (per item and sample): its sample, its gold label (`gold`, by id), its label (1, 0 or -1 for invalid),
    the answer text and reasoning parsed from free text (empty for a scored answer), why it is
    invalid, its score (NaN where the model gives none) and the cut-off learned on the train rows'
    scores (NaN without them)."""
    test, train = part_of(predictions, "test"), part_of(predictions, "train")
    scored = test["label"].notna().to_numpy() if "label" in test else np.zeros(len(test), dtype=bool)
    rows = []
    for is_scored, row in zip(scored, test.itertuples(index=False)):
        if is_scored:
            rows.append((int(row.label), "", None, None))
        else:
            reasoning = row.reasoning if isinstance(row.reasoning, str) else None
            finish_reason = row.finish_reason if isinstance(row.finish_reason, str) else None
            parsed = parse_answer(task, row.text, reasoning, reasoning_model=reasoning_model, finish_reason=finish_reason)
            rows.append((INVALID if parsed.label is None else parsed.label, parsed.answer, parsed.reasoning, parsed.invalid_reason))
    labels, answers, reasonings, reasons = zip(*rows) if rows else ((), (), (), ())
    scores = test["score"].astype(float).to_numpy() if "score" in test else np.full(len(test), math.nan)
    threshold = learned_threshold(gold.loc[train["id"]].to_numpy(), train["score"].astype(float)) if len(train) else math.nan
    return pd.DataFrame(
        {
            "id": test["id"].to_numpy(),
            "sample": samples_of(test).to_numpy(),
            "gold": gold.loc[test["id"]].to_numpy(),
            "label": list(labels),
            "answer": list(answers),
            "reasoning": list(reasonings),
            "invalid_reason": list(reasons),
            "score": scores,
            "learned_threshold": np.full(len(test), threshold),
        },
        columns=LABEL_COLUMNS,
    ).astype({"id": "string", "sample": "int64", "label": "int64", "answer": "string", "reasoning": "string", "invalid_reason": "string"})


def majority_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """One label per item from the labels of its samples (a parsed labels frame; one stored
    before samples, or one of a model asked once, has one sample per item and comes back as it
    is, less its `sample` column), in the order of the items' first rows.

    An item's label is the one (1, 0 or invalid) that more than half of its samples give; with
    none (a tie, or votes spread over the three) it is negative. So an item is invalid only when
    most of its samples are. Its answer, reasoning, invalid reason and score are those of its
    first sample giving that label (null when none does: negative for want of a majority)."""
    sample = samples_of(labels)
    if (sample == 0).all():
        return labels.drop(columns="sample", errors="ignore").reset_index(drop=True)
    ordered = labels.assign(sample=sample).sort_values(["id", "sample"], kind="stable")
    votes = pd.crosstab(ordered["id"], ordered["label"]).reindex(columns=[1, 0, INVALID], fill_value=0)
    majority = votes.idxmax(axis=1).where(2 * votes.max(axis=1) > votes.sum(axis=1), 0)
    agreeing = ordered[ordered["label"].to_numpy() == majority.loc[ordered["id"]].to_numpy()].drop_duplicates("id").set_index("id")
    items = pd.Index(labels["id"].drop_duplicates(), name="id")
    first = ordered.drop_duplicates("id").set_index("id").reindex(items)
    shown = agreeing.reindex(items)
    return pd.DataFrame(
        {
            "id": items.to_numpy(),
            "gold": first["gold"].to_numpy(),
            "label": majority.reindex(items).to_numpy(),
            "answer": shown["answer"].to_numpy(),
            "reasoning": shown["reasoning"].to_numpy(),
            "invalid_reason": shown["invalid_reason"].to_numpy(),
            "score": shown["score"].astype(float).to_numpy(),
            "learned_threshold": first["learned_threshold"].to_numpy(),
        },
        columns=ITEM_LABEL_COLUMNS,
    ).astype({"id": "string", "label": "int64", "answer": "string", "reasoning": "string", "invalid_reason": "string"})


def sample_matrix(labels: pd.DataFrame, items: pd.Series) -> np.ndarray:
    """The labels of each item's samples as an items x K array (1, 0, -1 invalid), rows in the
    order of `items`, columns in sample order. Raises ValueError naming an item that lacks a
    sample the others have."""
    table = labels.assign(sample=samples_of(labels)).pivot(index="id", columns="sample", values="label").reindex(list(items))
    incomplete = table.index[table.isna().any(axis=1)]
    if len(incomplete):
        raise ValueError(f"items without every sample's label (re-materialize the predictions and labels): {list(incomplete[:5])}")
    return table.to_numpy(dtype=np.int64)
