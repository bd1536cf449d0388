"""The synthetic sample data in data/samples: shape, labels, rates, reproducibility, hard negatives."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    for key in TASK_KEYS:
        assert (tmp_path / f"{key}.csv").read_bytes() == (SAMPLES / f"{key}.csv").read_bytes(), key


@pytest.mark.parametrize("key", TASK_KEYS)
def test_keyword_rule_has_false_positives(key):
    rule = re.compile(KEYWORD_RULES[key], re.IGNORECASE)
    _, rows = read_rows(SAMPLES / f"{key}.csv")
    false_positives = [row for row in rows if row["label"] == "0" and rule.search(row["text"])]
    assert len(false_positives) >= 10
