"""Great Expectations suites, really run: raw data, positive rate and split; no text in failures."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import great_expectations as gx
import pandas as pd
import pytest

from medassets.core import quality
from medassets.core.datasets import DatasetSource, load_dataset
from medassets.core.splitting import TEST_SHARE, stratified_split
from medassets.tasks import TASK_KEYS, TASKS

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
SECRET = "Pt John Q. Sample, MRN 0042, refuses insulin"  # stands for a clinical note


@cache
def _sample(task: str) -> pd.DataFrame:
    return load_dataset(DatasetSource(SAMPLES / f"{task}.csv")).frame


def sample(task: str) -> pd.DataFrame:
    return _sample(task).copy()


def raw(frame: pd.DataFrame) -> quality.QualityResult:
    return quality.validate(frame, "raw_dataset", quality.raw_dataset_expectations())


def failed(result: quality.QualityResult) -> set[tuple[str, str | None]]:
    return {(f["expectation"], f.get("column")) for f in result.failures}


def small_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "text": [SECRET, SECRET + " again", "ordinary note", "another note"],
            "label": [1, 0, 0, 1],
        }
    )


@pytest.mark.parametrize("task", TASK_KEYS)
def test_raw_expectations_pass_on_the_sample_data(task):
    result = raw(sample(task))
    assert result.success, result.failures
    assert result.failures == []
    assert result.evaluated == len(quality.raw_dataset_expectations())


BROKEN = {
    "duplicate id": (lambda f: f.assign(id=["a", "b", "a", "d"]), ("expect_column_values_to_be_unique", "id")),
    "empty text": (lambda f: f.assign(text=[SECRET, "  \t", "ordinary note", SECRET + " again"]),
                   ("expect_column_values_to_not_match_regex", "text")),
    "null text": (lambda f: f.assign(text=[SECRET, None, "ordinary note", SECRET + " again"]),
                  ("expect_column_values_to_not_be_null", "text")),
    "label 2": (lambda f: f.assign(label=[1, 0, 2, 1]), ("expect_column_values_to_be_in_set", "label")),
    "missing column": (lambda f: f.drop(columns=["label"]), ("expect_column_to_exist", "label")),
}


@pytest.mark.parametrize("problem", BROKEN)
def test_raw_expectations_fail_on_broken_frames_naming_the_expectation(problem):
    breaking, expected = BROKEN[problem]
    result = raw(breaking(small_frame()))
    assert not result.success
    assert expected in failed(result)
    assert SECRET not in repr(result)


def test_raw_failures_name_the_offending_ids_but_never_texts():
    frame = small_frame().assign(id=["a", "b", "a", "d"], text=[SECRET, "   ", SECRET, "x"])
    result = raw(frame)
    assert failed(result) == {
        ("expect_column_values_to_be_unique", "id"),
        ("expect_column_values_to_not_match_regex", "text"),
    }
    by_column = {f["column"]: f for f in result.failures}
    assert by_column["id"]["examples"] == ["a", "a"]
    assert by_column["text"]["unexpected_count"] == 1
    assert "examples" not in by_column["text"]
    assert SECRET not in repr(result)


@pytest.mark.parametrize("column", ["text", "prompt"])
def test_failures_on_a_text_column_carry_no_values(column):
    frame = pd.DataFrame({"id": ["a", "b"], column: [SECRET, "allowed"]})
    expectation = gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=["allowed"])
    result = quality.validate(frame, "phi", [expectation])
    assert not result.success
    assert result.failures[0]["unexpected_count"] == 1
    assert SECRET not in repr(result)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_positive_rate_passes_near_table_1(task):
    result = quality.validate(sample(task), "positive_rate",
                              quality.positive_rate_expectations(TASKS[task].positive_rate, 0.02))
    assert result.success, result.failures


@pytest.mark.parametrize("task", TASK_KEYS)
def test_positive_rate_fails_far_from_the_expected_rate(task):
    far_off = (TASKS[task].positive_rate + 0.5) % 1.0
    result = quality.validate(sample(task), "positive_rate", quality.positive_rate_expectations(far_off, 0.05))
    assert not result.success
    (failure,) = result.failures
    assert failure["expectation"] == "expect_column_mean_to_be_between"
    assert failure["observed_value"] == pytest.approx(sample(task)["label"].mean())


def check_split(frame: pd.DataFrame, split: pd.DataFrame) -> quality.QualityResult:
    expectations = quality.split_expectations(frame, TEST_SHARE, 0.01, 0.01)
    return quality.validate(quality.split_frame(split), "split", expectations)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_split_expectations_pass_on_the_stratified_split(task):
    frame = sample(task)
    result = check_split(frame, stratified_split(frame))
    assert result.success, result.failures


def test_split_expectations_fail_on_a_half_and_half_split():
    frame = sample("breast_cancer")
    split = stratified_split(frame, test_share=0.5)
    result = check_split(frame, split)
    assert not result.success
    assert ("expect_column_proportion_of_non_null_values_to_be_between", "test_label") in failed(result)


def test_split_expectations_fail_with_all_positives_in_test():
    frame = sample("medication_change_discussion")  # 20% positive: all of them fill the test part
    split = frame.assign(part=frame["label"].map({1: "test", 0: "train"}))
    result = check_split(frame, split)
    assert not result.success
    assert failed(result) == {
        ("expect_column_mean_to_be_between", "test_label"),
        ("expect_column_mean_to_be_between", "train_label"),
    }


def test_split_expectations_fail_on_a_duplicated_row():
    frame = sample("stigma_labeling")
    split = stratified_split(frame)
    result = check_split(frame, pd.concat([split, split.iloc[:1]], ignore_index=True))
    assert ("expect_column_values_to_be_unique", "id") in failed(result)


def sampled_answers(samples: int) -> pd.DataFrame:
    return pd.DataFrame({"id": ["a", "b"] * samples, "sample": [k for k in range(samples) for _ in "ab"], "text": "an answer"})


def predictions(frame: pd.DataFrame, samples: int) -> quality.QualityResult:
    return quality.validate(frame, "predictions", quality.predictions_expectations(2, samples))


def test_predictions_hold_one_answer_per_item_and_sample():
    assert predictions(sampled_answers(3), 3).success and predictions(sampled_answers(1), 1).success
    missing = sampled_answers(3).iloc[:-1]
    assert failed(predictions(missing, 3)) == {("expect_table_row_count_to_equal", None)}
    twice = sampled_answers(3).assign(sample=[0, 0, 1, 1, 1, 1])  # b's sample 1 twice, no sample 2
    assert ("expect_compound_columns_to_be_unique", None) in failed(predictions(twice, 3))
    assert failed(predictions(sampled_answers(3), 2)) >= {("expect_column_values_to_be_between", "sample")}
