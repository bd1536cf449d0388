"""An ensemble's label for each item, from its members' labels (1, 0, or -1 when invalid)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from medassets.core.registry import EnsembleModel

INVALID = -1


def vote(labels: np.ndarray, *, rule: str = "majority", tie: str = "negative", invalid_member: str = "abstain") -> np.ndarray:
    """`labels` has one row per item and one column per member.

    An invalid member answer abstains (`invalid_member="abstain"`) or votes negative
    (`"negative"`). Of the counted votes, `majority` is positive when more than half are
    positive (`tie` decides an even split: negative, positive or invalid), `any` when one
    is, `all` when every one is. An item with no counted vote is invalid.
    """
    labels = np.asarray(labels)
    if invalid_member == "negative":
        labels = np.where(labels == INVALID, 0, labels)
    positive = (labels == 1).sum(axis=1)
    counted = (labels != INVALID).sum(axis=1)
    if rule == "majority":
        tied = {"negative": 0, "positive": 1, "invalid": INVALID}[tie]
        result = np.where(2 * positive > counted, 1, np.where(2 * positive == counted, tied, 0))
    elif rule == "any":
        result = (positive > 0).astype(int)
    elif rule == "all":
        result = (positive == counted).astype(int)
    else:
        raise ValueError(f"rule must be majority, any or all, got {rule!r}")
    return np.where(counted == 0, INVALID, result)


def ensemble_labels(members: Mapping[str, pd.DataFrame], *, rule: str, tie: str, invalid_member: str) -> pd.DataFrame:
    """An ensemble's labels on one task from its members' parsed labels (frames with id, gold
    and label, by member name): id, gold, label, invalid_reason and `votes` (each member's vote,
    e.g. `a=1, b=0, c=invalid`), in the first member's order of the items."""
    names = list(members)
    first = members[names[0]]
    ids = first["id"].astype("string")
    columns = []
    for name in names:
        labels = members[name].astype({"id": "string"}).set_index("id")["label"]
        missing = ids[~ids.isin(labels.index)]
        if len(missing):
            raise ValueError(
                f"member {name!r} has no label for {len(missing)} of the {len(ids)} test items "
                f"(first: {missing.iloc[0]}); re-materialize its predictions and parsed labels for this split"
            )
        columns.append(labels.loc[ids].to_numpy(dtype=int))
    votes = np.column_stack(columns)
    labels = vote(votes, rule=rule, tie=tie, invalid_member=invalid_member)
    counted = (votes != INVALID).sum(axis=1) if invalid_member == "abstain" else np.full(len(ids), len(names))
    reasons = np.where(counted == 0, "no member's vote counted", "tied vote")
    return pd.DataFrame({
        "id": ids.to_numpy(),
        "gold": first["gold"].to_numpy(),
        "label": labels,
        "invalid_reason": pd.array(np.where(labels == INVALID, reasons, None), dtype="string"),
        "votes": [", ".join(f"{name}={'invalid' if v == INVALID else v}" for name, v in zip(names, row)) for row in votes],
    }).astype({"id": "string", "votes": "string"})


def rules_version(spec: EnsembleModel) -> str:
    """Changes exactly when an ensemble's members or voting rules change."""
    text = json.dumps(spec.model_dump(mode="json", include={"members", "rule", "tie", "invalid_member"}), sort_keys=True)
    return "ensemble-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
