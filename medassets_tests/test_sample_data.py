"""The synthetic sample data in data/samples: shape, labels, rates, reproducibility, hard negatives,
the supervised baseline's difficulty, and the planted label errors' answer key."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from medassets.core.baseline import fit_scores
from medassets.core.datasets import DatasetSource, load_dataset
from medassets.core.splitting import stratified_split
from medassets.tasks import TASK_KEYS, TASKS

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = DATA / "samples"
ROWS = 500

# A naive keyword rule per task; the hard negatives make each one raise false positives.
KEYWORD_RULES = {
    "breast_cancer": r"breast cancer",
    "medication_regimen_change": r"\b(stopped|started|switched|quit|dose)\b",
    "adverse_pregnancy_outcome": r"miscarriage|stillbirth|preterm|NICU",
    "covid19_potential_case": r"covid|positive",
    "stigma_labeling": r"non-compliant|drug-seeking|claims|refuses",
    "medication_change_discussion": r"increas|decreas|start|stop|switch|taper|dose|discontinu",
}


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.mark.parametrize("key", TASK_KEYS)
def test_sample_file_shape_and_labels(key):
    columns, rows = read_rows(SAMPLES / f"{key}.csv")
    assert columns == ["id", "text", "label"]
    assert len(rows) == ROWS
    ids = [row["id"] for row in rows]
    texts = [row["text"] for row in rows]
    assert len(set(ids)) == ROWS
    assert all(text.strip() for text in texts)
    assert len(set(texts)) == ROWS
    assert {row["label"] for row in rows} <= {"0", "1"}
    rate = sum(row["label"] == "1" for row in rows) / ROWS
    assert abs(rate - TASKS[key].positive_rate) <= 0.02
    assert rate == round(ROWS * TASKS[key].positive_rate) / ROWS


def test_sample_files_load_with_pandas():
    pd = pytest.importorskip("pandas")
    for key in TASK_KEYS:
        frame = pd.read_csv(SAMPLES / f"{key}.csv")
        assert list(frame.columns) == ["id", "text", "label"]
        assert len(frame) == ROWS
        assert set(frame["label"].unique()) == {0, 1}


def test_generator_reproduces_files_byte_for_byte(tmp_path):
    subprocess.run(
        [sys.executable, str(DATA / "generate_samples.py"), "--out", str(tmp_path)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    for name in [*TASK_KEYS, "label_errors"]:
        assert (tmp_path / f"{name}.csv").read_bytes() == (SAMPLES / f"{name}.csv").read_bytes(), name


@pytest.mark.parametrize("key", TASK_KEYS)
def test_keyword_rule_has_false_positives(key):
    rule = re.compile(KEYWORD_RULES[key], re.IGNORECASE)
    _, rows = read_rows(SAMPLES / f"{key}.csv")
    false_positives = [row for row in rows if row["label"] == "0" and rule.search(row["text"])]
    assert len(false_positives) >= 10


@cache
def split(key: str):
    """The task's sample file as the pipeline splits it."""
    return stratified_split(load_dataset(DatasetSource(SAMPLES / f"{key}.csv")).frame)


@cache
def baseline_test_scores(key: str) -> tuple[float, float]:
    """F1 and AUROC on the test split of the baseline fit on the train split; its answer is
    positive above 0.5, as the baseline backend answers."""
    from sklearn.metrics import f1_score, roc_auc_score

    rows = split(key)
    train, test = rows[rows["part"] == "train"], rows[rows["part"] == "test"]
    scores, _ = fit_scores(train["text"], train["label"], test["text"])
    return f1_score(test["label"], scores > 0.5), roc_auc_score(test["label"], scores)


@pytest.mark.parametrize("key", TASK_KEYS)
def test_baseline_is_good_but_far_from_perfect(key):
    f1, auroc = baseline_test_scores(key)
    assert 0.55 <= f1 <= 0.92
    assert auroc <= 0.97


def test_medication_regimen_change_is_the_hardest_task_for_the_baseline():
    f1 = {key: baseline_test_scores(key)[0] for key in TASK_KEYS}
    assert min(f1, key=f1.get) == "medication_regimen_change"


def test_label_errors_answer_key_matches_the_data():
    columns, errors = read_rows(SAMPLES / "label_errors.csv")
    assert columns == ["task", "id", "gold", "correct"]
    assert len({(error["task"], error["id"]) for error in errors}) == len(errors)
    for key in TASK_KEYS:
        gold = {row["id"]: row["label"] for row in read_rows(SAMPLES / f"{key}.csv")[1]}
        planted = [error for error in errors if error["task"] == key]
        assert 0.02 <= len(planted) / ROWS <= 0.05, key
        for error in planted:
            assert gold[error["id"]] == error["gold"], error
            assert {error["gold"], error["correct"]} == {"0", "1"}, error
        parts = dict(zip(split(key)["id"], split(key)["part"]))
        assert sum(parts[error["id"]] == "test" for error in planted) >= 2, key
    assert {error["task"] for error in errors} == set(TASK_KEYS)
