"""Table 3, paired F1 differences and the forest plot (pure pandas, no Dagster)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medassets.core.comparison import differences_table, forest_plot, interval_cell, paired_f1_differences, table3
from medassets.core.metrics import binary_report, paired_difference
from medassets.tasks import TASKS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("value", "low", "high", "cell"),
    [(0.8412, 0.8, 0.88, "0.84 (0.80-0.88)"), (1.0, 0.956, 1.0, "1.00 (0.96-1.00)"), (0.0, 0.0, 0.0, "0.00 (0.00-0.00)")],
)
def test_interval_cell(value, low, high, cell):
    assert interval_cell(value, low, high) == cell


def metrics_row(task: str, model: str, seed: int, invalid: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 80)
    pred = np.where(rng.random(80) < 0.8, truth, 1 - truth)
    pred[:invalid] = -1
    report = binary_report(truth, pred, n_resamples=200, seed=0)
    return {"task": task, "model": model, **{k: v for k, v in report.items() if not isinstance(v, (list, str))}}


@pytest.fixture
def two_by_two() -> pd.DataFrame:
    # Rows out of the paper's order; one (task, model) pair missing.
    return pd.DataFrame([
        metrics_row("stigma_labeling", "model-b", 1),
        metrics_row("breast_cancer", "model-b", 2, invalid=3),
        metrics_row("breast_cancer", "model-a", 3, invalid=1),
    ])


def test_table3_rows_in_paper_order_with_a_cell_per_metric_and_model(two_by_two):
    table = table3(two_by_two)
    assert list(table["Task"]) == [TASKS["breast_cancer"].title, TASKS["stigma_labeling"].title]
    assert list(table.columns) == [
        "Task",
        "Precision model-a", "Precision model-b", "Recall model-a", "Recall model-b", "F1 model-a", "F1 model-b",
        "Invalid model-a", "Invalid model-b",
    ]
    row = two_by_two.iloc[2]  # breast_cancer, model-a
    assert table.loc[0, "F1 model-a"] == interval_cell(row["f1"], row["f1_low"], row["f1_high"])
    assert table.loc[0, "Precision model-b"] == interval_cell(*two_by_two.iloc[1][["precision", "precision_low", "precision_high"]])
    assert table.loc[1, "Recall model-a"] == table.loc[1, "F1 model-a"] == "not evaluated"
    assert table.loc[0, "Invalid model-a"] == 1 and table.loc[0, "Invalid model-b"] == 3
    assert table.loc[1, "Invalid model-b"] == 0 and table.loc[1, "Invalid model-a"] == ""


def test_paired_f1_differences_equal_paired_difference():
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 2, 120)
    pred_a = np.where(rng.random(120) < 0.85, gold, 1 - gold)
    pred_b = np.where(rng.random(120) < 0.7, gold, 1 - gold)
    pred_b[:4] = -1
    ids = [f"id-{i:03d}" for i in range(120)]
    labels = pd.concat([
        pd.DataFrame({"task": "covid19_potential_case", "model": "a", "id": ids, "gold": gold, "label": pred_a}),
        # rows of the other model in another order: pairing goes by id
        pd.DataFrame({"task": "covid19_potential_case", "model": "b", "id": ids, "gold": gold, "label": pred_b}).iloc[::-1],
    ], ignore_index=True)
    differences = paired_f1_differences(labels, n_resamples=300, confidence=0.9, seed=3, invalid="negative")
    expected = paired_difference(gold, pred_a, pred_b, metric="f1", n_resamples=300, confidence=0.9, seed=3)
    assert len(differences) == 1
    row = differences.iloc[0]
    assert (row["task"], row["model_a"], row["model_b"], row["n"]) == ("covid19_potential_case", "a", "b", 120)
    assert row[["f1_diff", "f1_diff_low", "f1_diff_high", "f1_a", "f1_b"]].tolist() == pytest.approx(
        [expected["diff"], expected["low"], expected["high"], expected["a"], expected["b"]]
    )
    shown = differences_table(differences).iloc[0]
    assert shown["Models"] == "a - b"
    assert shown["F1 difference"] == f"{expected['diff']:+.2f} ({expected['low']:+.2f} to {expected['high']:+.2f})"


def test_forest_plot_is_a_png(two_by_two):
    image = forest_plot(two_by_two)
    assert image[:8] == PNG_MAGIC
    assert len(image) > 5_000
