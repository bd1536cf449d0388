"""The review page's filters, counts and pages on small hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from medassets.core import review
from medassets.core.metrics import mcnemar


def _labels(gold, labels, reasons=None):
    ids = [f"i{n}" for n in range(len(gold))]
    reasons = reasons or [None if label != -1 else "no answer phrase" for label in labels]
    return pd.DataFrame({"id": ids, "gold": gold, "label": labels, "invalid_reason": pd.array(reasons, dtype="string")})


GOLD = [1, 1, 0, 0, 1, 0]
A = [1, 0, 0, -1, -1, 1]
B = [1, 1, 1, 0, 0, 0]


@pytest.fixture
def items():
    finish = pd.DataFrame({"id": ["i4", "i0"], "finish_reason": ["length", "stop"]})
    return review.task_items({"a": _labels(GOLD, A), "b": _labels(GOLD, B)}, {"a": finish})


def test_discordant_items_are_mcnemars_b_and_c(items):
    expected = mcnemar(GOLD, A, B)
    kept = review.select(items, "discordant", a="a", b="b")
    assert kept.sum() == expected["b"] + expected["c"]
    assert review.discordant_counts(items, "a", "b") == {"b": expected["b"], "c": expected["c"]}
    # invalid scored as negative: a's invalid answer on i3 (gold 0) is right, on i4 (gold 1) wrong as b's 0
    assert items.ids[kept].tolist() == ["i1", "i2", "i5"]


def test_filters_keep_the_items_they_name(items):
    assert items.ids[review.select(items, "disagree")].tolist() == ["i1", "i2", "i5"]
    assert items.ids[review.select(items, "all_wrong")].tolist() == ["i4"]
    assert items.ids[review.select(items, "only_wrong", model="a")].tolist() == ["i1", "i5"]
    assert items.ids[review.select(items, "invalid", reason="no answer phrase")].tolist() == ["i3", "i4"]
    assert items.ids[review.select(items, "gold", label="0")].tolist() == ["i2", "i3", "i5"]
    assert items.ids[review.select(items, "truncated")].tolist() == ["i4"]


def test_counts_equal_the_filters(items):
    counts = review.filter_counts(items)
    assert counts == {
        "all": 6, "disagree": 3, "all_wrong": 1, "truncated": 1, "only_wrong:a": 2, "only_wrong:b": 1,
        "invalid:no answer phrase": 2, "gold:1": 3, "gold:0": 3,
    }


def test_a_model_without_an_answer_is_never_right_nor_counted_in_a_pair():
    items = review.task_items({"a": _labels(GOLD, A), "b": _labels(GOLD, B).iloc[:3]})
    assert review.answer_cell(items, 5, 1) == "not evaluated"
    assert review.answer_cell(items, 3, 0) == "invalid: no answer phrase"
    expected = mcnemar(GOLD[:3], A[:3], B[:3])
    assert review.discordant_counts(items, "a", "b") == {"b": expected["b"], "c": expected["c"]} == {"b": 1, "c": 1}


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [("nope", {}, "no filter"), ("only_wrong", {}, "needs model"), ("only_wrong", {"model": "z"}, "no model 'z'"),
     ("discordant", {"a": "a", "b": "a"}, "two different"), ("invalid", {"reason": "x"}, "no answer"), ("gold", {"label": "2"}, "0 or 1")],
)
def test_odd_filters_are_refused(items, name, arguments, message):
    with pytest.raises(review.FilterError, match=message):
        review.select(items, name, **arguments)


def test_pages_cover_the_kept_items_once():
    mask = np.arange(120) % 2 == 0
    pages = [review.page(mask, number, size=25) for number in (1, 2, 3)]
    assert [p.pages for p in pages] == [3, 3, 3] and pages[0].total == 60
    assert np.concatenate([p.rows for p in pages]).tolist() == np.flatnonzero(mask).tolist()
    with pytest.raises(review.FilterError, match="out of range"):
        review.page(mask, 4, size=25)
    assert review.page(np.zeros(3, dtype=bool), 1).pages == 1


def test_gold_labels_that_disagree_between_models_are_an_error():
    other = _labels(GOLD, B)
    other.loc[0, "gold"] = 0
    with pytest.raises(ValueError, match="'i0'"):
        review.task_items({"a": _labels(GOLD, A), "b": other})
