"""The review page's logic: one task's items beside every model's answer, the filters a reviewer
narrows them with, the count of each, and pages of the result. Ids, labels and reasons only;
the text of an item is read by the page alone.

An item is right for a model as McNemar's test scores it (`metrics.mcnemar`, invalid scored as
negative): an invalid answer is right exactly when the gold label is 0. So the discordant items
of a pair A/B are McNemar's b (only A right) and c (only B right).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

INVALID = -1
NOT_EVALUATED = -2
PAGE_SIZE = 50

# name -> what the filter takes: nothing, a model, a pair of models, an invalid reason, a label
FILTERS = {
    "all": (), "disagree": (), "all_wrong": (), "truncated": (),
    "only_wrong": ("model",), "discordant": ("a", "b"), "invalid": ("reason",), "gold": ("label",),
}


class FilterError(ValueError):
    """A filter the task's items cannot be narrowed by (unknown name, model, reason or label)."""


@dataclass(frozen=True)
class TaskItems:
    """One task's test items (rows) by model (columns)."""

    ids: np.ndarray  # str, sorted
    gold: np.ndarray  # 1 or 0
    models: tuple[str, ...]
    labels: np.ndarray  # (items, models): 1, 0, INVALID or NOT_EVALUATED
    reasons: np.ndarray  # (items, models): the invalid reason, "" when valid or not evaluated
    truncated: np.ndarray  # (items, models): an answer (of any sample) stopped at max_tokens (finish_reason "length")

    @property
    def evaluated(self) -> np.ndarray:
        return self.labels != NOT_EVALUATED

    @property
    def right(self) -> np.ndarray:
        """Right as McNemar's test scores it: invalid counts as negative; not evaluated is never right."""
        scored = np.where(self.labels == INVALID, 0, self.labels)
        return (scored == self.gold[:, None]) & self.evaluated

    def column(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise FilterError(f"no model {model!r} has labels on this task; models: {', '.join(self.models)}") from None

    def invalid_reasons(self) -> list[str]:
        return sorted(set(self.reasons[self.labels == INVALID].tolist()) - {""})


def task_items(labels: Mapping[str, pd.DataFrame], finish_reasons: Mapping[str, pd.DataFrame] | None = None) -> TaskItems:
    """The items of one task from each model's labels, one per item (parsed_labels' majority
    labels or ensemble_labels frames: id, gold, label, invalid_reason) and, where known, its
    predictions' finish reasons (id, finish_reason; one row per sample). Items are the union of
    the models' ids, sorted; gold labels must agree."""
    if not labels:
        raise ValueError("no model has labels on this task")
    models = tuple(sorted(labels))
    every = pd.concat([frame[["id", "gold"]] for frame in labels.values()], ignore_index=True).drop_duplicates()
    if every["id"].duplicated().any():
        item = every.loc[every["id"].duplicated(), "id"].iloc[0]
        raise ValueError(f"item {item!r}: the models' labels disagree on its gold label; re-run parsed_labels")
    every = every.sort_values("id")
    ids = every["id"].astype(str).to_numpy()
    index = pd.Index(ids)
    shape = (len(ids), len(models))
    label_matrix = np.full(shape, NOT_EVALUATED, dtype=np.int64)
    reasons = np.full(shape, "", dtype=object)
    truncated = np.zeros(shape, dtype=bool)
    for column, model in enumerate(models):
        frame = labels[model]
        rows = index.get_indexer(frame["id"].astype(str))
        label_matrix[rows, column] = frame["label"].astype(int).to_numpy()
        reasons[rows, column] = frame["invalid_reason"].astype(object).where(frame["invalid_reason"].notna(), "").to_numpy()
        finished = (finish_reasons or {}).get(model)
        if finished is not None:
            stopped = finished["finish_reason"].astype(object).eq("length").fillna(False).astype(bool).groupby(finished["id"].astype(str)).any()
            truncated[index.get_indexer(stopped.index), column] = stopped.to_numpy()
    return TaskItems(ids, every["gold"].astype(int).to_numpy(), models, label_matrix, reasons, truncated)


def select(items: TaskItems, name: str, **arguments: str) -> np.ndarray:
    """The items a filter keeps, as a boolean mask."""
    if name not in FILTERS:
        raise FilterError(f"no filter {name!r}; filters: {', '.join(FILTERS)}")
    missing = [argument for argument in FILTERS[name] if not arguments.get(argument)]
    if missing:
        raise FilterError(f"filter {name!r} needs {', '.join(missing)}")
    right, evaluated = items.right, items.evaluated
    if name == "all":
        return np.ones(len(items.ids), dtype=bool)
    if name == "disagree":  # some evaluated model right and some wrong
        return (right.any(axis=1)) & ((~right & evaluated).any(axis=1))
    if name == "all_wrong":
        return evaluated.any(axis=1) & ~(right.any(axis=1))
    if name == "truncated":
        return items.truncated.any(axis=1)
    if name == "only_wrong":
        column = items.column(arguments["model"])
        others = np.delete(right | ~evaluated, column, axis=1).all(axis=1)
        return evaluated[:, column] & ~right[:, column] & others & (len(items.models) > 1)
    if name == "discordant":
        a, b = items.column(arguments["a"]), items.column(arguments["b"])
        if a == b:
            raise FilterError("the discordant items of a pair need two different models")
        both = evaluated[:, a] & evaluated[:, b]
        return both & (right[:, a] != right[:, b])
    if name == "invalid":
        reason = arguments["reason"]
        if reason not in items.invalid_reasons():
            raise FilterError(f"no answer on this task is invalid for {reason!r}")
        return ((items.labels == INVALID) & (items.reasons == reason)).any(axis=1)
    if arguments["label"] not in ("0", "1"):
        raise FilterError("the gold label filter takes 0 or 1")
    return items.gold == int(arguments["label"])


def filter_counts(items: TaskItems) -> dict[str, int]:
    """How many items each argument-free filter, each `only_wrong`, each invalid reason and each
    gold label keeps, keyed as `name` or `name:argument` (the pair filter is counted on request)."""
    counts = {name: int(select(items, name).sum()) for name, takes in FILTERS.items() if not takes}
    if len(items.models) > 1:
        counts |= {f"only_wrong:{model}": int(select(items, "only_wrong", model=model).sum()) for model in items.models}
    counts |= {f"invalid:{reason}": int(select(items, "invalid", reason=reason).sum()) for reason in items.invalid_reasons()}
    counts |= {f"gold:{label}": int(select(items, "gold", label=label).sum()) for label in ("1", "0")}
    return counts


def discordant_counts(items: TaskItems, a: str, b: str) -> dict[str, int]:
    """McNemar's b (only `a` right) and c (only `b` right) over the items both answered."""
    right, evaluated = items.right, items.evaluated
    first, second = items.column(a), items.column(b)
    both = evaluated[:, first] & evaluated[:, second]
    return {"b": int((both & right[:, first] & ~right[:, second]).sum()), "c": int((both & ~right[:, first] & right[:, second]).sum())}


@dataclass(frozen=True)
class Page:
    rows: np.ndarray  # the positions of the page's items in TaskItems
    number: int  # from 1
    pages: int
    total: int


def page(mask: np.ndarray, number: int, size: int = PAGE_SIZE) -> Page:
    """The items of page `number` (from 1) of those the mask keeps, in id order."""
    kept = np.flatnonzero(mask)
    pages = max(1, -(-len(kept) // size))
    if not 1 <= number <= pages:
        raise FilterError(f"page {number} is out of range: 1 to {pages}")
    return Page(kept[(number - 1) * size : number * size], number, pages, len(kept))


def label_cell(label: int, reason: str) -> str:
    """A label as a cell: 1, 0, `invalid: <reason>` or `not evaluated`."""
    if label == INVALID:
        return f"invalid: {reason}"
    return "not evaluated" if label == NOT_EVALUATED else str(label)


def answer_cell(items: TaskItems, row: int, column: int) -> str:
    """A model's answer to an item as a cell: 1, 0, `invalid: <reason>` or `not evaluated`."""
    return label_cell(int(items.labels[row, column]), items.reasons[row, column])
