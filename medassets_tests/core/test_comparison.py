"""Table 3, paired F1 differences and the forest plot (pure pandas, no Dagster)."""

from __future__ import annotations

import html
import io

import numpy as np
import pandas as pd
import pytest

from medassets.core.comparison import (
    AUROC_DIFFERENCE_COLUMNS,
    NO_SCORES,
    auroc_differences_table,
    comparison_settings,
    differences_table,
    forest_plot,
    headings,
    interval_cell,
    metrics_of_labels,
    metrics_settings,
    model_pairs,
    paired_auroc_differences,
    paired_f1_differences,
    prompt_sensitivity,
    score_curves_plot,
    scored_models,
    table3,
)
from PIL import Image
from sklearn.metrics import f1_score

from medassets.core import report
from medassets.core.metrics import (
    benjamini_hochberg,
    binary_report,
    delong,
    holm,
    mcnemar,
    paired_auroc_difference,
    paired_difference,
    score_report,
)
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
    return {"task": task, "model": model, **{k: v for k, v in report.items() if not isinstance(v, list)}, "gold": "original"}


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
    assert shown["table3"].endswith("with 95% percentile bootstrap intervals; invalid answers scored as negative; original gold labels")
    assert shown["forest_plot"] == "F1 of the positive class (95% bootstrap intervals; invalid answers scored as negative)"
    assert "with 90% paired bootstrap intervals; invalid answers excluded;" in shown["f1_differences"]
    assert "adjusted across the tasks of each pair by Benjamini-Hochberg, significant below 0.1; the smallest accuracy difference" in shown["f1_differences"]
    assert "by Holm, significant below 0.1;" in headings(settings_of(two_by_two, correction="holm"))["f1_differences"]
    assert "McNemar's exact test, p not adjusted for the several tasks, significant below 0.1;" in (
        headings(settings_of(two_by_two, correction="none"))["f1_differences"]
    )


def test_headings_say_where_the_metrics_partitions_differ(two_by_two):
    mixed = two_by_two.assign(confidence=[0.8, 0.95, 0.95], invalid_policy=["exclude", "negative", "negative"])
    assert metrics_settings(mixed)["confidence"] == [0.8, 0.95]
    assert headings(settings_of(mixed))["table3"].endswith(
        "80% or 95% (differing between partitions) percentile bootstrap intervals; invalid answers excluded or "
        "scored as negative (differing between partitions); original gold labels"
    )
    adjudicated = two_by_two.assign(gold=["adjudicated", "original", "original"])
    assert headings(settings_of(adjudicated))["table3"].endswith("; adjudicated or original gold labels (differing between partitions)")


def test_metrics_that_record_no_settings_are_refused(two_by_two):
    with pytest.raises(ValueError, match=r"metrics of model-b\|stigma_labeling record no .*materialize those metrics again"):
        metrics_settings(two_by_two.assign(confidence=[None, 0.95, 0.95]))
    with pytest.raises(ValueError, match=r"metrics of model-a\|breast_cancer record no .*gold"):
        metrics_settings(two_by_two.assign(gold=["original", "original", None]))
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


# Scores: Table 3's AUROC and AUPRC, paired AUROC differences, curves, the report's section


def scored_metrics_row(task: str, model: str, seed: int, scored: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 80)
    row = metrics_row(task, model, seed)
    if scored:
        report = score_report(truth, np.clip(0.3 * truth + 0.7 * rng.random(80), 0, 1), n_resamples=200)
        return row | {k: v for k, v in report.items() if k.startswith(("auroc", "auprc")) or k in ("brier", "ece")}
    return row | {k: np.nan for k in ("auroc", "auroc_low", "auroc_high", "auprc", "auprc_low", "auprc_high", "brier", "ece")}


def test_table3_adds_auroc_and_auprc_where_some_model_gives_scores(two_by_two):
    metrics = pd.DataFrame([
        scored_metrics_row("stigma_labeling", "model-b", 1),
        scored_metrics_row("breast_cancer", "model-b", 2),
        scored_metrics_row("breast_cancer", "model-a", 3, scored=False),
    ])
    table = table3(metrics)
    assert list(table.columns) == [
        "Task",
        "Precision model-a", "Precision model-b", "Recall model-a", "Recall model-b", "F1 model-a", "F1 model-b",
        "AUROC model-a", "AUROC model-b", "AUPRC model-a", "AUPRC model-b",
        "Invalid model-a", "Invalid model-b",
    ]
    row = metrics.iloc[1]  # breast_cancer, model-b
    assert table.loc[0, "AUROC model-b"] == interval_cell(row["auroc"], row["auroc_low"], row["auroc_high"])
    assert table.loc[0, "AUPRC model-b"] == interval_cell(row["auprc"], row["auprc_low"], row["auprc_high"])
    assert table.loc[0, "AUROC model-a"] == table.loc[0, "AUPRC model-a"] == NO_SCORES == "–"
    assert table.loc[1, "AUROC model-a"] == "not evaluated"
    # The paper's columns are those of a frame without scores.
    without = table3(metrics.drop(columns=[c for c in metrics if c.startswith(("auroc", "auprc"))]))
    assert without.equals(table.drop(columns=[c for c in table if c.startswith(("AUROC", "AUPRC"))]))
    unscored = metrics.assign(auroc=np.nan)
    assert not any(column.startswith("AUROC") for column in table3(unscored).columns)


def test_headings_of_the_score_sections(two_by_two):
    plain = headings(settings_of(two_by_two))
    assert "AUROC" not in plain["table3"]
    scored = pd.DataFrame([scored_metrics_row("breast_cancer", "m", 1)])
    shown = headings(settings_of(scored, confidence=0.9, correction="bh"))
    assert shown["table3"].startswith(
        "Precision, recall and F1 of the positive class and, where a model gives scores, AUROC and AUPRC with 95% percentile "
        "bootstrap intervals, AUROC's from DeLong's variance on the logit scale; invalid answers"
    )
    assert shown["auroc_differences"] == (
        "Paired AUROC differences with 90% paired bootstrap intervals; DeLong's test, p adjusted across the tasks of "
        "each pair by Benjamini-Hochberg, significant below 0.1"
    )
    assert "10 equal-width bins" in shown["score_curves"]


def scored_labels(seed=21, tasks=("breast_cancer", "stigma_labeling", "medication_change_discussion")) -> pd.DataFrame:
    """Models a, b, c score every item (c best); model d gives labels only."""
    rng = np.random.default_rng(seed)
    frames = []
    for task in tasks:
        gold = rng.integers(0, 2, 100)
        ids = [f"{task}-{i}" for i in range(100)]
        for m, model in enumerate(("a", "b", "c", "d")):
            score = 1 / (1 + np.exp(-(rng.normal(size=100) + (0.5 + 0.8 * m) * (2 * gold - 1))))
            frames.append(pd.DataFrame({
                "task": task, "model": model, "id": ids, "gold": gold, "label": (score >= 0.5).astype(int),
                "score": score if model != "d" else np.nan,
            }).sample(frac=1, random_state=m))  # each model's rows in its own order: pairing goes by id
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("correction, adjust", [("holm", holm), ("bh", benjamini_hochberg)])
def test_paired_auroc_differences_per_task_and_pair(correction, adjust):
    labels = scored_labels()
    differences = paired_auroc_differences(labels, n_resamples=200, confidence=0.9, seed=4, correction=correction)
    assert list(differences.columns) == AUROC_DIFFERENCE_COLUMNS
    assert len(differences) == 3 * 3  # pairs of a, b, c on three tasks; d gives no scores
    assert sorted(set(zip(differences["model_a"], differences["model_b"]))) == [("a", "b"), ("a", "c"), ("b", "c")]
    for _, row in differences.iterrows():
        of = labels[labels["task"] == row["task"]]
        a = of[of["model"] == row["model_a"]].set_index("id").sort_index()
        b = of[of["model"] == row["model_b"]].set_index("id").sort_index()
        expected = paired_auroc_difference(a["gold"], a["score"], b["score"], n_resamples=200, confidence=0.9, seed=4)
        test = delong(a["gold"], a["score"], b["score"])
        assert row[["auroc_a", "auroc_b", "auroc_diff", "auroc_diff_low", "auroc_diff_high"]].tolist() == pytest.approx(
            [expected["a"], expected["b"], expected["diff"], expected["low"], expected["high"]]
        )
        assert (row["n"], row["delong_z"], row["delong_p"]) == (100, pytest.approx(test["z"]), pytest.approx(test["p_value"]))
    for _, pair in differences.groupby(["model_a", "model_b"]):
        assert pair["delong_p_adjusted"].tolist() == pytest.approx(adjust(pair["delong_p"].tolist()))
    assert (differences["correction"] == correction).all()
    shown = auroc_differences_table(differences)
    first = differences.iloc[0]
    assert shown.loc[0, "AUROC difference"] == (
        f"{first['auroc_diff']:+.2f} ({first['auroc_diff_low']:+.2f} to {first['auroc_diff_high']:+.2f})"
    )
    assert shown.loc[0, "AUROC a / b"] == f"{first['auroc_a']:.2f} / {first['auroc_b']:.2f}"
    assert f"p ({'Holm' if correction == 'holm' else 'Benjamini-Hochberg'}, across tasks)" in shown.columns


def test_a_model_missing_a_score_on_a_task_is_left_out_of_that_task():
    labels = scored_labels()
    missing = labels.index[(labels["model"] == "a") & (labels["task"] == "breast_cancer")][0]
    labels.loc[missing, "score"] = np.nan
    assert scored_models(labels, "breast_cancer") == ["b", "c"]
    assert scored_models(labels, "stigma_labeling") == ["a", "b", "c"]
    differences = paired_auroc_differences(labels, n_resamples=50, confidence=0.95, seed=0)
    on_breast_cancer = differences[differences["task"] == "breast_cancer"]
    assert list(zip(on_breast_cancer["model_a"], on_breast_cancer["model_b"])) == [("b", "c")]
    assert len(differences) == 1 + 3 + 3


def test_paired_auroc_differences_against_a_reference():
    differences = paired_auroc_differences(
        scored_labels(), n_resamples=50, confidence=0.95, seed=0, pairs="reference", reference="c"
    )
    assert sorted(set(zip(differences["model_a"], differences["model_b"]))) == [("a", "c"), ("b", "c")]
    unscored_reference = paired_auroc_differences(
        scored_labels(), n_resamples=50, confidence=0.95, seed=0, pairs="reference", reference="d"
    )
    assert unscored_reference.empty


def test_fewer_than_two_scored_models_give_an_empty_frame_with_its_columns():
    labels = scored_labels(tasks=("breast_cancer",))
    one_scored = labels.assign(score=np.where(labels["model"] == "a", labels["score"], np.nan))
    for frame in (one_scored, labels.drop(columns="score")):
        differences = paired_auroc_differences(frame, n_resamples=20, confidence=0.95, seed=0)
        assert differences.empty and list(differences.columns) == AUROC_DIFFERENCE_COLUMNS
        assert auroc_differences_table(differences).empty


def test_score_curves_plot_shows_every_scored_model():
    labels = scored_labels(tasks=("breast_cancer",))
    png = score_curves_plot(labels, "breast_cancer")
    image = Image.open(io.BytesIO(png))
    assert png[:8] == PNG_MAGIC and image.size[0] > 2 * image.size[1]  # three panels side by side
    assert image.text["Description"] == "Models: a, b, c"
    assert image.text["Title"] == f"Score curves: {TASKS['breast_cancer'].title}"
    with pytest.raises(ValueError, match="no model has a score on every item of task 'breast_cancer'"):
        score_curves_plot(labels.assign(score=np.nan), "breast_cancer")


def render(**extra) -> tuple[str, dict, pd.DataFrame]:
    labels = scored_labels(tasks=("breast_cancer",)).assign(invalid_reason=None)
    metrics = pd.DataFrame([scored_metrics_row("breast_cancer", m, k) for k, m in enumerate("abcd")])
    shown = headings(settings_of(metrics))
    return report.render_report(
        table3=table3(metrics), differences=pd.DataFrame(), labels=labels, sensitivity=pd.DataFrame(),
        forest_png=forest_plot(metrics), provenance={}, headings=shown, **extra,
    ), shown, labels


def test_report_shows_auroc_differences_and_score_curves_when_given():
    page, shown, labels = render()
    assert "auroc-differences" not in page and "score-curves" not in page  # existing callers: unchanged
    differences = auroc_differences_table(paired_auroc_differences(labels, n_resamples=20, confidence=0.9, seed=0))
    page, shown, _ = render(auroc_differences=differences, score_curves={"breast_cancer": score_curves_plot(labels, "breast_cancer")})
    assert page.index("id='differences'") < page.index("id='auroc-differences'") < page.index("id='score-curves'")
    assert html.escape(shown["auroc_differences"]) in page and html.escape(shown["score_curves"]) in page
    assert "<table" in page.split("id='auroc-differences'")[1].split("</section>")[0]
    assert page.count("alt='ROC, precision-recall and reliability curves:") == 1


def test_report_shows_table3_a_row_per_task_and_model_f1_first(two_by_two):
    wide = table3(two_by_two)
    narrow = report.table3_by_model(wide)
    assert list(narrow.columns) == ["Task", "Model", "F1", "Precision", "Recall", "Invalid"]
    assert narrow["Task"].tolist() == [TASKS["breast_cancer"].title, "", TASKS["stigma_labeling"].title, ""]
    assert narrow["Model"].tolist() == ["model-a", "model-b"] * 2
    # the same cells as the wide table, none lost or added
    for metric in ("F1", "Precision", "Recall", "Invalid"):
        assert narrow[metric].tolist() == [wide.loc[row, f"{metric} {model}"] for row in range(2) for model in ("model-a", "model-b")]


def test_report_shows_original_and_adjudicated_results_side_by_side():
    from medassets.core import adjudication

    labels = three_models_on_three_tasks().assign(invalid_reason=None)
    of_task = labels[labels["task"] == "stigma_labeling"]
    ids = sorted(of_task["id"].unique())
    gold = of_task.drop_duplicates("id").set_index("id").loc[ids, "gold"].tolist()
    verdicts = [adjudication.checked("stigma_labeling", item, "wrong", 1 - g, "annotation error", "", "ana", g) for item, g in zip(ids[:5], gold)]
    adjudicated = {"stigma_labeling": adjudication.adjudicated_gold(ids, gold, verdicts)}
    settings = {"n_resamples": 50, "confidence": 0.95, "seed": 0, "invalid": "negative"}
    original = metrics_of_labels(of_task, gold="original", **settings)
    rescored = metrics_of_labels(adjudication.with_adjudicated_gold(of_task, adjudicated), gold="adjudicated", **settings)
    tables = report.adjudication_tables(original, rescored, adjudication.adjudication_summary(adjudicated),
                                        adjudication.reviewer_agreement_by_task(adjudicated, {"stigma_labeling": verdicts}))
    row = tables["by task"].iloc[0]
    assert row["Labels changed"] == 5 and row["Judged"] == 5
    a_rows = of_task[of_task["model"] == "a"]
    corrected = a_rows["gold"].where(~a_rows["id"].isin(ids[:5]), 1 - a_rows["gold"])
    predicted = np.where(a_rows["label"] == -1, 0, a_rows["label"])
    assert row["F1 a"] == f"{f1_score(a_rows['gold'], predicted):.2f} → {f1_score(corrected, predicted):.2f}"
    page, _, _ = render()
    assert "No gold label has been adjudicated" in page
    page, _, _ = render(adjudication=tables)
    section = page.split("id='adjudication'")[1].split("</section>")[0]
    assert f"<td>{row['F1 a']}</td>" in section and "No reviewer has judged an item another judged" in section


def test_compare_returns_every_table_as_the_functions_compute_it_and_adjudicated_results():
    from medassets.core.adjudication import Adjudication, adjudicated_gold
    from medassets.core.analysis import AnalysisSettings
    from medassets.core.comparison import adjudicated_results, compare

    labels = scored_labels()
    analysis = AnalysisSettings(n_resamples=200, confidence=0.9, seed=3, invalid="exclude", correction="bh")
    metrics = metrics_of_labels(labels, gold="original", n_resamples=200, confidence=0.9, seed=3, invalid="exclude")
    task = "stigma_labeling"
    of_task = labels[(labels["task"] == task) & (labels["model"] == "a")].sort_values("id")
    flipped = of_task["id"].iloc[0]
    verdict = Adjudication(task, flipped, "wrong", 1 - int(of_task["gold"].iloc[0]), "", "", "r1", 0.0)
    unjudged = labels[(labels["task"] == "breast_cancer") & (labels["model"] == "a")]
    gold = {task: adjudicated_gold(of_task["id"].tolist(), of_task["gold"].tolist(), [verdict]),
            "breast_cancer": adjudicated_gold(unjudged["id"].tolist(), unjudged["gold"].tolist(), [])}
    judged = adjudicated_results(labels, gold, {task: [verdict]}, analysis)
    result = compare(metrics, labels, analysis, setups={}, adjudicated=judged)
    resampling = {"n_resamples": 200, "confidence": 0.9, "seed": 3}
    pairing = {"pairs": "every", "reference": None, "correction": "bh"}
    pd.testing.assert_frame_equal(result.table3, table3(metrics))
    pd.testing.assert_frame_equal(result.f1_differences, paired_f1_differences(labels, **resampling, invalid="exclude", **pairing))
    pd.testing.assert_frame_equal(result.auroc_differences, paired_auroc_differences(labels, **resampling, **pairing))
    assert result.settings["f1_differences"]["correction"] == "bh" and "90%" in result.headings["f1_differences"]
    # Only the judged task is rescored (breast cancer's adjudicated gold holds no verdict), one label changed.
    assert judged.labels_changed == {task: 1} and set(judged.adjudicated["task"]) == {task}
    assert set(result.tables()) == {
        "table3", "f1_differences", "auroc_differences", "prompt_sensitivity", "sampled", "sampled_differences", "table3_adjudicated", "adjudication",
    }
    assert adjudicated_results(labels, {"breast_cancer": gold["breast_cancer"]}, {}, analysis) is None


def test_each_pair_says_what_its_items_can_show_by_connors_formula():
    from medassets.core.metrics import mcnemar_detectable_difference, mcnemar_sample_size

    differences = paired_f1_differences(scored_labels(), n_resamples=50, confidence=0.9, seed=0, invalid="negative")
    for row in differences.itertuples():
        discordant = row.mcnemar_b + row.mcnemar_c
        assert row.detectable_diff == mcnemar_detectable_difference(discordant / row.n, row.n, alpha=0.1, power=0.8)
        if row.mcnemar_b == row.mcnemar_c:
            assert np.isnan(row.items_needed)
        else:
            assert row.items_needed == mcnemar_sample_size(row.mcnemar_b / row.n, row.mcnemar_c / row.n, alpha=0.1, power=0.8)
    shown = differences_table(differences)
    # the adjusted p stays last: `make run` prints that column
    assert list(shown.columns)[-4:] == ["Detectable difference", "Items needed", "McNemar p", "p (Holm, across tasks)"]


def test_sampled_models_are_the_rows_of_models_with_several_samples_in_task_order():
    from medassets.core.comparison import sampled_models, sampled_table

    metrics = pd.DataFrame([
        metrics_row("stigma_labeling", "m3", 1) | {"samples": 3, "f1_run_sd": 0.02, "f1_majority": 0.8},
        metrics_row("breast_cancer", "m3", 2) | {"samples": 3, "f1_run_sd": 0.01, "f1_majority": 0.7},
        metrics_row("breast_cancer", "once", 3) | {"samples": 1},
    ])
    sampled = sampled_models(metrics)
    assert list(sampled["task"]) == ["breast_cancer", "stigma_labeling"] and set(sampled["model"]) == {"m3"}
    shown = sampled_table(sampled)
    assert shown["Run-to-run SD"].tolist() == ["0.010", "0.020"] and shown["Samples"].tolist() == [3, 3]
    assert len(sampled_models(metrics.drop(columns=["samples", "f1_run_sd", "f1_majority"]))) == 0  # metrics from before samples


def test_pairs_with_a_sampled_model_are_compared_on_mean_accuracy_and_others_are_not():
    from medassets.core.comparison import paired_sampled_differences, sampled_differences_table
    from medassets.core.metrics import paired_sampled_difference

    rng = np.random.default_rng(5)
    gold = rng.integers(0, 2, 60)
    ids = [f"i{n}" for n in range(60)]
    frames = [pd.DataFrame({"task": "breast_cancer", "model": model, "id": ids, "sample": sample, "gold": gold,
                            "label": np.where(rng.random(60) < right, gold, 1 - gold)})
              for model, right, samples in (("sampled", 0.8, 3), ("once", 0.7, 1), ("twice", 0.6, 1)) for sample in range(samples)]
    answers = pd.concat(frames, ignore_index=True)
    differences = paired_sampled_differences(answers, n_resamples=200, confidence=0.9, seed=1)
    assert sorted(zip(differences["model_a"], differences["model_b"])) == [("once", "sampled"), ("sampled", "twice")]
    row = differences[differences["model_a"] == "once"].iloc[0]
    matrix = {m: answers[answers["model"] == m].pivot(index="id", columns="sample", values="label").loc[sorted(ids)].to_numpy()
              for m in ("once", "sampled")}
    expected = paired_sampled_difference(pd.Series(gold, index=ids).loc[sorted(ids)], matrix["once"], matrix["sampled"],
                                         n_resamples=200, confidence=0.9, seed=1)
    assert (row.accuracy_diff, row.accuracy_diff_low, row.p, row.k_b) == (expected["diff"], expected["low"], expected["p_value"], 3)
    assert len(sampled_differences_table(differences)) == 2
