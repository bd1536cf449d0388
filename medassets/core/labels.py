"""Answers turned into labels, in one place: free text parsed by the task's answer phrases
(`parsing.parse_answer`), a scored answer taken as the engine gave it (its score, and the label
of the likelier side), and the cut-off that maximizes F1 on the scores of the train rows the
predictions stage scored (never a test row)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medassets.core.generation import part_of
from medassets.core.metrics import learn_threshold
from medassets.core.parsing import parse_answer

LABEL_COLUMNS = ["id", "gold", "label", "answer", "reasoning", "invalid_reason", "score", "learned_threshold"]


def learned_threshold(train_labels, train_scores) -> float:
    """The cut-off that maximizes F1 on train rows; NaN without train rows or with one class only."""
    labels = np.asarray(train_labels, dtype=int)
    if len(set(labels.tolist())) < 2:
        return math.nan
    return learn_threshold(labels, np.asarray(train_scores, dtype=float))


def label_answers(task: str, predictions: pd.DataFrame, gold: pd.Series, *, reasoning_model: bool) -> pd.DataFrame:
    """One row per test answer: its gold label (`gold`, by id), its label (1, 0 or -1 for invalid),
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
            rows.append((-1 if parsed.label is None else parsed.label, parsed.answer, parsed.reasoning, parsed.invalid_reason))
    labels, answers, reasonings, reasons = zip(*rows) if rows else ((), (), (), ())
    scores = test["score"].astype(float).to_numpy() if "score" in test else np.full(len(test), math.nan)
    threshold = learned_threshold(gold.loc[train["id"]].to_numpy(), train["score"].astype(float)) if len(train) else math.nan
    return pd.DataFrame(
        {
            "id": test["id"].to_numpy(),
            "gold": gold.loc[test["id"]].to_numpy(),
            "label": list(labels),
            "answer": list(answers),
            "reasoning": list(reasonings),
            "invalid_reason": list(reasons),
            "score": scores,
            "learned_threshold": np.full(len(test), threshold),
        },
        columns=LABEL_COLUMNS,
    ).astype({"id": "string", "label": "int64", "answer": "string", "reasoning": "string", "invalid_reason": "string"})
