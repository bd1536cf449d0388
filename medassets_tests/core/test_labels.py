"""Answers turned into labels in one place: free text parsed, a scored answer taken as given, the
cut-off learned on the train rows' scores alone, one label per item from its samples' labels."""

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from medassets.core.labels import ITEM_LABEL_COLUMNS, label_answers, learned_threshold, majority_labels
from medassets.core.metrics import learn_threshold
from medassets.tasks import TASKS

TASK = "breast_cancer"
POSITIVE, NEGATIVE = TASKS[TASK].positive_phrase, TASKS[TASK].negative_phrases[0]


def predictions(part: str, ids, texts=None, scores=None, samples=None, finish_reasons=None) -> pd.DataFrame:
    n = len(ids)
    scores = [math.nan] * n if scores is None else scores
    return pd.DataFrame({
        "id": ids, "part": part, "text": texts or [""] * n, "reasoning": [None] * n, "finish_reason": finish_reasons or ["stop"] * n,
        "label": pd.array([None if math.isnan(s) else int(s > 0.5) for s in scores], dtype="Int64"), "score": scores,
    } | ({} if samples is None else {"sample": samples}))


ANSWERS = {1: f"The tweet is {POSITIVE}.", 0: NEGATIVE, -1: "No idea."}


def sampled_labels(votes: dict[str, list[int]]) -> pd.DataFrame:
    """Parsed labels of items answered by samples whose labels are `votes` (sample by sample, as predictions are stored)."""
    ids, samples, texts = [], [], []
    for sample in range(max(map(len, votes.values()))):
        for item, labels in votes.items():
            if sample < len(labels):
                ids.append(item), samples.append(sample), texts.append(ANSWERS[labels[sample]])
    gold = pd.Series(1, index=list(votes))
    return label_answers(TASK, predictions("test", ids, texts, samples=samples), gold, reasoning_model=False)


def test_free_text_is_parsed_and_without_train_rows_there_is_no_cut_off():
    frame = label_answers(TASK, predictions("test", ["a", "b", "c"], [f"The tweet is {POSITIVE}.", NEGATIVE, "No idea."]),
                          pd.Series([1, 0, 1], index=["a", "b", "c"]), reasoning_model=False)
    assert frame["label"].tolist() == [1, 0, -1] and frame["gold"].tolist() == [1, 0, 1]
    assert frame["invalid_reason"].tolist()[:2] == [pd.NA, pd.NA] and frame["invalid_reason"].iloc[2] == "no_phrase"
    assert frame["learned_threshold"].dtype == np.float64 and frame["learned_threshold"].isna().all()  # stored as a number


def test_a_scored_answer_is_taken_as_given_and_the_cut_off_is_learned_on_train_rows_only():
    rng = np.random.default_rng(0)
    train_ids = [f"t{n}" for n in range(40)]
    train_gold = rng.integers(0, 2, 40)
    train_scores = np.clip(0.4 * train_gold + 0.6 * rng.random(40), 0, 1)
    test_scores = [0.9, 0.2, 0.6]
    gold = pd.Series([*train_gold, 1, 0, 0], index=[*train_ids, "a", "b", "c"])
    both = pd.concat([predictions("test", ["a", "b", "c"], scores=test_scores), predictions("train", train_ids, scores=list(train_scores))])
    frame = label_answers(TASK, both, gold, reasoning_model=False)
    assert frame["id"].tolist() == ["a", "b", "c"]  # the test rows alone
    assert frame["label"].tolist() == [1, 0, 1] and frame["score"].tolist() == test_scores and (frame["answer"] == "").all()
    expected = learn_threshold(train_gold, train_scores)
    assert frame["learned_threshold"].eq(expected).all()
    other_test = both.assign(score=np.where(both["part"] == "test", 1 - both["score"], both["score"]))
    assert label_answers(TASK, other_test, gold, reasoning_model=False)["learned_threshold"].eq(expected).all()


@pytest.mark.parametrize("labels, scores", [([], []), ([1, 1], [0.2, 0.7])])
def test_no_cut_off_without_both_classes(labels, scores):
    assert math.isnan(learned_threshold(labels, scores))


def test_one_sample_per_item_gives_the_labels_as_they_are():
    labels = sampled_labels({"a": [1], "b": [0], "c": [-1]})
    assert labels["sample"].tolist() == [0, 0, 0]
    majority = majority_labels(labels)
    pd.testing.assert_frame_equal(majority, labels.drop(columns="sample"))
    assert list(majority.columns) == ITEM_LABEL_COLUMNS
    stored_before_samples = labels.drop(columns="sample")  # a parsed labels file written before samples
    pd.testing.assert_frame_equal(majority_labels(stored_before_samples), stored_before_samples)


def test_the_majority_of_each_items_samples_ties_and_splits_negative():
    votes = {"pos": [1, 0, 1], "neg": [0, -1, 0], "inv": [-1, 1, -1], "split": [1, 0, -1], "all": [1, 1, 1], "tie": [1, 0, 0, 1], "no_zero": [1, -1]}
    labels = sampled_labels(votes)
    assert sorted(zip(labels["id"], labels["sample"])) == sorted((item, k) for item, v in votes.items() for k in range(len(v)))
    majority = majority_labels(labels).set_index("id")
    assert list(majority.index) == list(votes)  # the items' order
    assert majority["label"].to_dict() == {"pos": 1, "neg": 0, "inv": -1, "split": 0, "all": 1, "tie": 0, "no_zero": 0}
    assert majority.loc["inv", "invalid_reason"] == "no_phrase" and pd.isna(majority.loc["pos", "invalid_reason"])
    assert majority.loc["neg", "answer"] == labels[(labels["id"] == "neg") & (labels["sample"] == 0)]["answer"].iloc[0]
    assert majority.loc["split", "answer"] == majority.loc["neg", "answer"]  # its one negative sample's
    assert pd.isna(majority.loc["no_zero", "answer"])  # negative for want of a majority, and no sample says so


@pytest.mark.parametrize("samples", [2, 3, 4, 5])
def test_majority_labels_agree_with_counting_votes_one_item_at_a_time(samples):
    rng = np.random.default_rng(samples)
    votes = {f"item{n}": rng.choice([1, 0, -1], size=samples, p=[0.45, 0.35, 0.2]).tolist() for n in range(60)}
    majority = majority_labels(sampled_labels(votes)).set_index("id")["label"]
    for item, labels in votes.items():
        label, count = Counter(labels).most_common(1)[0]
        assert majority[item] == (label if count > samples / 2 else 0), (item, labels)


def test_a_reasoning_model_cut_off_inside_its_reasoning_is_told_apart_by_its_finish_reason():
    texts = ["The tweet is " + POSITIVE + ", or", "The tweet is " + POSITIVE + ", or", "Hm.</think> " + NEGATIVE]
    frame = label_answers(TASK, predictions("test", ["a", "b", "c"], texts, finish_reasons=["length", "stop", "length"]),
                          pd.Series([1, 1, 0], index=["a", "b", "c"]), reasoning_model=True)
    assert frame["label"].tolist() == [-1, -1, 0]
    assert frame["invalid_reason"].tolist()[:2] == ["reasoning_cut_off", "reasoning_unclosed"]
