"""Adjudications: the append-only store, adjudicated labels, their version, and Cohen's kappa."""

import sqlite3

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from medassets.core import adjudication as adj


def _verdict(item, verdict, label=None, reviewer="ana", original=1):
    return adj.checked("breast_cancer", item, verdict, label, "annotation error", "", reviewer, original)


def test_store_keeps_history_in_order_and_refuses_changes(tmp_path):
    path = tmp_path / "responses.sqlite"
    store = adj.AdjudicationStore(path)
    store.add(_verdict("i1", "wrong", 0))
    store.add(_verdict("i1", "ambiguous", reviewer="ben"))
    store.add(_verdict("i2", "correct"))
    store.close()
    reopened = adj.AdjudicationStore(path)
    history = reopened.for_task("breast_cancer", "i1")
    assert [(a.verdict, a.label, a.reviewer) for a in history] == [("wrong", 0, "ana"), ("ambiguous", None, "ben")]
    assert len(reopened.for_task("breast_cancer")) == 3 and reopened.for_task("stigma_labeling") == []
    db = sqlite3.connect(path)
    for change in ("UPDATE adjudications SET label = 1", "DELETE FROM adjudications"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(change)
    db.close()


@pytest.mark.parametrize(
    ("verdict", "label", "reason", "message"),
    [("maybe", None, "other", "verdict"), ("wrong", None, "other", "label"), ("wrong", 1, "other", "label"),
     ("correct", 0, "other", "only a `wrong`"), ("wrong", 0, "because", "reason")],
)
def test_odd_verdicts_are_refused(verdict, label, reason, message):
    with pytest.raises(adj.AdjudicationError, match=message):
        adj.checked("breast_cancer", "i1", verdict, label, reason, "", "ana", 1)


def test_adjudicated_gold_takes_the_latest_verdict():
    history = [_verdict("i1", "wrong", 0), _verdict("i2", "wrong", 0), _verdict("i2", "correct", reviewer="ben"), _verdict("i3", "ambiguous")]
    frame = adj.adjudicated_gold(["i0", "i1", "i2", "i3"], [1, 1, 1, 1], history)
    assert frame["label"].tolist() == [1, 0, 1, 1]
    assert frame["verdict"].tolist() == ["", "wrong", "correct", "ambiguous"]
    assert adj.original_agreement(frame)["changed"] == 1


def test_version_changes_with_labels_not_comments():
    first = [_verdict("i1", "wrong", 0)]
    same = [adj.checked("breast_cancer", "i1", "wrong", 0, "other", "a comment", "ben", 1)]
    assert adj.labels_version(first) == adj.labels_version(same)
    assert adj.labels_version(first) != adj.labels_version(first + [_verdict("i1", "correct")])


@given(st.lists(st.tuples(st.sampled_from([0, 1, "ambiguous"]), st.sampled_from([0, 1, "ambiguous"])), min_size=1, max_size=30))
def test_kappa_equals_scikit_learn(pairs):
    first, second = [str(a) for a, _ in pairs], [str(b) for _, b in pairs]
    expected = cohen_kappa_score(first, second) if len(set(first) | set(second)) > 1 else float("nan")
    assert adj.cohen_kappa(first, second) == pytest.approx(expected, nan_ok=True)


def test_reviewer_agreement_over_items_both_judged():
    history = [
        _verdict("i1", "wrong", 0, "ana"), _verdict("i1", "wrong", 0, "ben"),
        _verdict("i2", "correct", None, "ana"), _verdict("i2", "wrong", 0, "ben"),
        _verdict("i3", "correct", None, "ana"), _verdict("i3", "correct", None, "ben"),
        _verdict("i4", "ambiguous", None, "ana"),
    ]
    agreement = adj.reviewer_agreement(history, {f"i{n}": 1 for n in range(5)})
    row = agreement.iloc[0]
    assert (row["reviewer_a"], row["reviewer_b"], row["items"]) == ("ana", "ben", 3)
    assert row["kappa"] == pytest.approx(cohen_kappa_score(["0", "1", "1"], ["0", "0", "1"]))
    assert np.isnan(adj.cohen_kappa([], []))


def _labels_of_two_models():
    ids = [f"i{n}" for n in range(6)]
    gold = [1, 1, 0, 0, 1, 0]
    return pd.concat([
        pd.DataFrame({"task": "breast_cancer", "model": model, "id": ids, "gold": gold, "label": label})
        for model, label in (("a", [1, 0, 0, 1, 1, -1]), ("b", [1, 1, 1, 0, 0, 0]))
    ], ignore_index=True)


def test_adjudicated_gold_replaces_the_labels_gold_of_its_task_only():
    labels = pd.concat([_labels_of_two_models(), _labels_of_two_models().assign(task="stigma_labeling")], ignore_index=True)
    verdicts = [_verdict("i0", "wrong", 0), _verdict("i2", "wrong", 1, original=0), _verdict("i3", "ambiguous", original=0)]
    frame = adj.adjudicated_gold([f"i{n}" for n in range(6)], [1, 1, 0, 0, 1, 0], verdicts)
    rescored = adj.with_adjudicated_gold(labels, {"breast_cancer": frame})
    of_a = rescored[(rescored["task"] == "breast_cancer") & (rescored["model"] == "a")]
    assert of_a["gold"].tolist() == [0, 1, 1, 0, 1, 0]
    assert rescored[rescored["task"] == "stigma_labeling"]["gold"].tolist() == labels[labels["task"] == "stigma_labeling"]["gold"].tolist()
    with pytest.raises(ValueError, match=r"adjudicated_gold 'breast_cancer' lacks the labelled items \['i5'\]"):
        adj.with_adjudicated_gold(labels, {"breast_cancer": frame.iloc[:5]})

    summary = adj.adjudication_summary({"breast_cancer": frame}).iloc[0]
    assert (summary["items"], summary["judged"], summary["labels_changed"], summary["ambiguous"]) == (6, 3, 2, 1)
    assert summary["kappa_original_adjudicated"] == pytest.approx(cohen_kappa_score([1, 0], [0, 1]))


def test_reviewer_agreement_by_task_leaves_out_items_outside_the_frame():
    frame = adj.adjudicated_gold(["i0", "i1"], [1, 1], [])
    verdicts = [_verdict("i0", "wrong", 0), _verdict("i1", "correct"), _verdict("i0", "wrong", 0, reviewer="ben"),
                _verdict("i1", "wrong", 0, reviewer="ben"), _verdict("gone", "correct", reviewer="ben")]
    agreement = adj.reviewer_agreement_by_task({"breast_cancer": frame}, {"breast_cancer": verdicts})
    assert agreement.to_dict("records") == [
        {"task": "breast_cancer", "reviewer_a": "ana", "reviewer_b": "ben", "items": 2,
         "kappa": pytest.approx(cohen_kappa_score([0, 1], [0, 0]))},
    ]
