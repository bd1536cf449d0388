"""The per-item error table and its outcome counts."""

import pandas as pd

from medassets.core.error_analysis import NOT_EVALUATED, item_table, outcome_counts


def labels() -> pd.DataFrame:
    rows = [
        # id, gold, a, b, c
        ("i1", 1, 1, 1, 1),    # all right
        ("i2", 0, 1, 1, 1),    # all wrong
        ("i3", 1, 0, 1, 1),    # only a wrong
        ("i4", 0, 0, 1, -1),   # only a right (c invalid)
        ("i5", 1, 1, 0, 1),    # only b wrong
    ]
    frames = []
    for m, model in enumerate("abc"):
        frames.append(pd.DataFrame({
            "model": model, "id": [r[0] for r in rows], "gold": [r[1] for r in rows], "label": [r[2 + m] for r in rows],
            "invalid_reason": [("no_phrase" if r[2 + m] == -1 else None) for r in rows],
        }))
    return pd.concat(frames, ignore_index=True)


def test_one_row_per_item_with_each_models_answer_and_who_got_it_right():
    table = item_table(labels())
    assert table.columns.tolist() == ["id", "gold", "a", "b", "c", "right", "n_right"]
    assert table["id"].tolist() == ["i1", "i2", "i3", "i4", "i5"]
    assert table.loc[3, "c"] == "invalid: no_phrase"
    assert table["right"].tolist() == ["a, b, c", "", "b, c", "a", "a, c"]
    assert table["n_right"].tolist() == [3, 0, 2, 1, 2]


def test_outcome_counts():
    table = item_table(labels())
    assert outcome_counts(table, ["a", "b", "c"]) == {
        "items": 5, "all right": 1, "all wrong": 1,
        "only a wrong": 1, "only b wrong": 1, "only c wrong": 0,
        "only a right": 1, "only b right": 0, "only c right": 0,
    }


def test_an_item_a_model_did_not_answer_reads_not_evaluated():
    partial = labels()
    partial = partial[~((partial["model"] == "b") & (partial["id"] == "i1"))]
    table = item_table(partial)
    assert table.loc[0, "b"] == NOT_EVALUATED and table.loc[0, "right"] == "a, c"
