"""Which test items each model gets right: one row per item, and how the items fall out
(all right, all wrong, only one model wrong or right). Ids and labels only, never text."""

from __future__ import annotations

import pandas as pd

NOT_EVALUATED = "not evaluated"


def item_table(labels: pd.DataFrame) -> pd.DataFrame:
    """One task's items: id, gold, each model's answer (1, 0 or `invalid: <reason>`), the
    models that got it right and how many did.

    `labels` has columns model, id, gold, label (1, 0 or -1) and invalid_reason. An invalid
    answer is never right; an item a model has no answer for reads `not evaluated`.
    """
    models = sorted(labels["model"].unique())
    gold = labels.drop_duplicates("id").set_index("id")["gold"].sort_index()
    table = pd.DataFrame({"id": gold.index, "gold": gold.to_numpy()})
    right = pd.DataFrame(index=gold.index)
    for model in models:
        own = labels[labels["model"] == model].set_index("id").reindex(gold.index)
        answer = own["label"].astype("Int64").astype("string")
        answer = answer.where(own["label"] != -1, "invalid: " + own["invalid_reason"].fillna(""))
        table[model] = answer.fillna(NOT_EVALUATED).to_numpy()
        right[model] = (own["label"] == gold).fillna(False).to_numpy()
    table["right"] = [", ".join(model for model in models if row[model]) for _, row in right.iterrows()]
    table["n_right"] = right.sum(axis=1).astype(int).to_numpy()
    return table.astype({"id": "string"})


def outcome_counts(table: pd.DataFrame, models: list[str]) -> dict[str, int]:
    """How many items every model gets right, none does, and only one model gets wrong or right."""
    n = len(models)
    right_sets = [set(filter(None, cell.split(", "))) for cell in table["right"]]
    counts = {"items": len(table), "all right": sum(len(s) == n for s in right_sets), "all wrong": sum(not s for s in right_sets)}
    if n > 1:
        for model in models:
            counts[f"only {model} wrong"] = sum(s == set(models) - {model} for s in right_sets)
        if n > 2:
            for model in models:
                counts[f"only {model} right"] = sum(s == {model} for s in right_sets)
    return counts
