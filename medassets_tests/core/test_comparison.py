"""Table 3, paired F1 differences and the forest plot (pure pandas, no Dagster)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from medassets.core.comparison import (
    comparison_settings,
    differences_table,
    forest_plot,
    headings,
    interval_cell,
    metrics_settings,
    model_pairs,
    paired_f1_differences,
    prompt_sensitivity,
    table3,
)
from PIL import Image

from medassets.core.metrics import benjamini_hochberg, binary_report, holm, mcnemar, paired_difference
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
    return {"task": task, "model": model, **{k: v for k, v in report.items() if not isinstance(v, list)}}


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


def settings_of(metrics: pd.DataFrame, **config) -> dict:
    config = {"n_resamples": 100, "confidence": 0.9, "seed": 0, "invalid": "exclude", "correction": "bh"} | config
    return comparison_settings(metrics, pairs="every", reference=None, **config)


def test_headings_state_the_settings_of_each_table(two_by_two):
    """Table 3 and the plot with the metrics' own settings (binary_report's defaults here), the
    differences with the comparison's."""
    shown = headings(settings_of(two_by_two))
    assert shown["table3"].endswith("with 95% percentile bootstrap intervals; invalid answers scored as negative")
    assert shown["forest_plot"] == "F1 of the positive class (95% bootstrap intervals; invalid answers scored as negative)"
    assert "with 90% paired bootstrap intervals; invalid answers excluded;" in shown["f1_differences"]
    assert shown["f1_differences"].endswith("adjusted across the tasks of each pair by Benjamini-Hochberg")
    assert headings(settings_of(two_by_two, correction="holm"))["f1_differences"].endswith("by Holm")


def test_headings_say_where_the_metrics_partitions_differ(two_by_two):
    mixed = two_by_two.assign(confidence=[0.8, 0.95, 0.95], invalid_policy=["exclude", "negative", "negative"])
    assert metrics_settings(mixed)["confidence"] == [0.8, 0.95]
    assert headings(settings_of(mixed))["table3"].endswith(
        "80% or 95% (differing between partitions) percentile bootstrap intervals; invalid answers excluded or "
        "scored as negative (differing between partitions)"
    )


def test_metrics_that_record_no_settings_are_refused(two_by_two):
    with pytest.raises(ValueError, match=r"metrics of model-b\|stigma_labeling record no .*materialize those metrics again"):
        metrics_settings(two_by_two.assign(confidence=[None, 0.95, 0.95]))
    with pytest.raises(ValueError, match="record no"):
        forest_plot(two_by_two.drop(columns="invalid_policy"))


def test_forest_plot_states_its_settings(two_by_two):
    image = Image.open(io.BytesIO(forest_plot(two_by_two.assign(confidence=0.9, invalid_policy="exclude"))))
    assert image.text["Description"] == "F1 of the positive class (90% bootstrap intervals; invalid answers excluded)"


def three_models_on_three_tasks(seed=11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for t, task in enumerate(("breast_cancer", "stigma_labeling", "medication_change_discussion")):
        gold = rng.integers(0, 2, 90)
        ids = [f"{task}-{i}" for i in range(90)]
        for m, model in enumerate(("a", "b", "c")):
            label = np.where(rng.random(90) < 0.6 + 0.1 * m + 0.05 * t, gold, 1 - gold)
            label[rng.random(90) < 0.05] = -1
            frames.append(pd.DataFrame({"task": task, "model": model, "id": ids, "gold": gold, "label": label}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("correction, adjust", [("holm", holm), ("bh", benjamini_hochberg)])
def test_mcnemar_per_task_and_pair_adjusted_across_the_pairs_tasks(correction, adjust):
    labels = three_models_on_three_tasks()
    differences = paired_f1_differences(labels, n_resamples=50, confidence=0.95, seed=0, invalid="negative", correction=correction)
    assert len(differences) == 3 * 3  # 3 pairs x 3 tasks
    for _, row in differences.iterrows():
        of = labels[labels["task"] == row["task"]]
        gold = of[of["model"] == "a"]["gold"].to_numpy()
        expected = mcnemar(gold, of[of["model"] == row["model_a"]]["label"], of[of["model"] == row["model_b"]]["label"])
        assert (row["mcnemar_b"], row["mcnemar_c"], row["mcnemar_p"]) == (expected["b"], expected["c"], pytest.approx(expected["p_value"]))
    for _, pair in differences.groupby(["model_a", "model_b"]):
        assert pair["mcnemar_p_adjusted"].tolist() == pytest.approx(adjust(pair["mcnemar_p"].tolist()))
    shown = differences_table(differences)
    assert f"p ({'Holm' if correction == 'holm' else 'Benjamini-Hochberg'}, across tasks)" in shown.columns


def test_each_model_against_a_reference():
    assert model_pairs(["c", "a", "b"]) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert model_pairs(["c", "a", "b"], pairs="reference", reference="b") == [("a", "b"), ("c", "b")]
    with pytest.raises(ValueError, match="the reference model 'z' has no labels"):
        model_pairs(["a", "b"], pairs="reference", reference="z")
    with pytest.raises(ValueError, match="name that model"):
        model_pairs(["a", "b"], pairs="reference")
    differences = paired_f1_differences(
        three_models_on_three_tasks(), n_resamples=20, confidence=0.95, seed=0, invalid="exclude", pairs="reference", reference="c"
    )
    assert sorted(set(zip(differences["model_a"], differences["model_b"]))) == [("a", "c"), ("b", "c")]


def test_prompt_sensitivity_gives_each_setups_f1_and_the_spread():
    metrics = pd.DataFrame([
        {"task": "breast_cancer", "model": "m", "f1": 0.50},
        {"task": "breast_cancer", "model": "m-2shot", "f1": 0.62},
        {"task": "breast_cancer", "model": "m-constrained", "f1": 0.41},
        {"task": "breast_cancer", "model": "baseline", "f1": 0.90},
    ])
    setups = {
        "m": ("embedded smollm2", "paper, 0-shot, free"), "m-2shot": ("embedded smollm2", "paper, 2-shot, free"),
        "m-constrained": ("embedded smollm2", "paper, 0-shot, constrained"), "baseline": ("baseline", "train split"),
    }
    table = prompt_sensitivity(metrics, setups)
    assert len(table) == 1  # the baseline has one setup: no spread to show
    row = table.iloc[0]
    assert row["m-2shot (paper, 2-shot, free)"] == "0.62" and row["m-constrained (paper, 0-shot, constrained)"] == "0.41"
    assert row["Spread"] == "0.21"
