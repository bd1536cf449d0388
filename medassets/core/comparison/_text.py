"""What the comparison's tables say: the settings each was computed with, its heading, and
the display form of its cells."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medassets.core.metrics import ECE_BINS, SETTINGS
from medassets.tasks import TASKS


CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "none"}


NO_SCORES = "–"  # Table 3's AUROC and AUPRC cell of a model that gives no scores


_INVALID_POLICY_TEXT = {"negative": "scored as negative", "exclude": "excluded"}


# What a metrics row records beside its numbers: binary_report's settings, and which gold
# labels (`original` or `adjudicated`) it was scored against.
RECORDED_SETTINGS = (*SETTINGS, "gold")


def metrics_settings(metrics: pd.DataFrame) -> dict[str, list]:
    """The confidence levels, invalid-answer policies, resample counts and gold labels the
    metrics rows were computed with (each the sorted distinct values: partitions may differ)."""
    recorded = metrics.reindex(columns=["task", "model", *RECORDED_SETTINGS])
    unrecorded = recorded[recorded[list(RECORDED_SETTINGS)].isna().any(axis=1)]
    if len(unrecorded):
        partitions = ", ".join(f"{model}|{task}" for task, model in zip(unrecorded["task"], unrecorded["model"]))
        raise ValueError(f"the metrics of {partitions} record no {', '.join(RECORDED_SETTINGS)}: materialize those metrics again")
    return {setting: sorted(recorded[setting].unique().tolist()) for setting in RECORDED_SETTINGS}


def comparison_settings(
    metrics: pd.DataFrame, *, n_resamples: int, confidence: float, seed: int, invalid: str, correction: str,
    pairs: str, reference: str | None,
) -> dict[str, dict]:
    """What each table was computed with: Table 3 and the forest plot with the metrics' own
    settings, the paired differences with the comparison's."""
    return {
        "table3": metrics_settings(metrics) | {"scores": has_scores(metrics), "sampled": has_samples(metrics)},
        "f1_differences": {
            "confidence": confidence, "invalid_policy": invalid, "n_resamples": n_resamples, "seed": seed,
            "correction": correction, "pairs": pairs, "reference": reference,
        },
        "auroc_differences": {
            "confidence": confidence, "n_resamples": n_resamples, "seed": seed,
            "correction": correction, "pairs": pairs, "reference": reference,
        },
    }


def has_scores(metrics: pd.DataFrame) -> bool:
    """Whether some row of the metrics has a finite AUROC (older metrics have no such column)."""
    return "auroc" in metrics and bool(np.isfinite(metrics["auroc"].astype(float)).any())


def has_samples(metrics: pd.DataFrame) -> bool:
    """Whether some model of the metrics answers several samples per item (older metrics have no such column)."""
    return "samples" in metrics and bool((metrics["samples"] > 1).any())


def _percent(confidence: float) -> str:
    return f"{round(confidence * 100, 4):g}%"


def _intervals(confidences: list[float], policies: list[str], kind: str, exception: str = "") -> str:
    """`90% bootstrap intervals; invalid answers excluded`, saying so where partitions differ;
    `exception` follows the intervals' kind (", AUROC's from ...")."""
    levels = " or ".join(_percent(c) for c in confidences) + (" (differing between partitions)" if len(confidences) > 1 else "")
    policy = " or ".join(_INVALID_POLICY_TEXT[p] for p in policies) + (" (differing between partitions)" if len(policies) > 1 else "")
    return f"{levels} {kind} intervals{exception}; invalid answers {policy}"


def forest_plot_label(metrics_settings: dict[str, list]) -> str:
    return f"F1 of the positive class ({_intervals(metrics_settings['confidence'], metrics_settings['invalid_policy'], 'bootstrap')})"


def headings(settings: dict[str, dict]) -> dict[str, str]:
    """The heading of each table and the plot, stating the settings its numbers were computed with."""
    table, pairs = settings["table3"], settings["f1_differences"]
    scored = " and, where a model gives scores, AUROC and AUPRC" if table.get("scores") else ""
    gold = " or ".join(table["gold"]) + " gold labels" + (" (differing between partitions)" if len(table["gold"]) > 1 else "")
    shown = {
        "table3": f"Precision, recall and F1 of the positive class{scored} with "
        + _intervals(table["confidence"], table["invalid_policy"], "percentile bootstrap",
                     ", AUROC's from DeLong's variance on the logit scale" if table.get("scores") else "")
        + f"; {gold}"
        + ("; a model answering several samples per item: the mean over its samples, intervals over items" if table.get("sampled") else ""),
        "forest_plot": forest_plot_label(table),
        "f1_differences": "Paired F1 differences with "
        + _intervals([pairs["confidence"]], [pairs["invalid_policy"]], "paired bootstrap")
        + f"; McNemar's exact test, {adjustment(pairs['correction'])}, significant below {significance(pairs['confidence']):g}; "
        "the smallest accuracy difference it detects with 80% power and the items the observed one needs (Connor 1987)",
        "score_curves": "ROC and precision-recall curves and a reliability diagram of each model that gives scores "
        f"(calibration in {ECE_BINS} equal-width bins of the score; ECE weighs each bin by its items)",
    }
    shown["sampled_differences"] = (
        f"Paired differences in mean accuracy of models answering several samples per item (an item's correctness: the share "
        f"of its samples that are right), with {_percent(pairs['confidence'])} paired item-bootstrap intervals; a sign-flip "
        f"test, {adjustment(pairs['correction'])}, significant below {significance(pairs['confidence']):g}"
    )
    if "auroc_differences" in settings:
        scores = settings["auroc_differences"]
        shown["auroc_differences"] = (
            f"Paired AUROC differences with {_percent(scores['confidence'])} paired bootstrap intervals; DeLong's test, "
            f"{adjustment(scores['correction'])}, significant below {significance(scores['confidence']):g}"
        )
    return shown


def adjustment(correction: str) -> str:
    """How the p-values of a pair were adjusted across its tasks, as a heading says it."""
    if correction == "none":
        return "p not adjusted for the several tasks"
    return f"p adjusted across the tasks of each pair by {CORRECTION_NAMES[correction]}"


def significance(confidence: float) -> float:
    """The significance level that goes with a confidence level (0.05 with 95% intervals)."""
    return round(1 - confidence, 10)


def _p_column(differences: pd.DataFrame) -> str:
    correction = differences["correction"].iloc[0] if len(differences) else "holm"
    return "p (not adjusted)" if correction == "none" else f"p ({CORRECTION_NAMES[correction]}, across tasks)"


def interval_cell(value: float, low: float, high: float) -> str:
    """A Table 3 cell: `0.84 (0.80-0.88)`."""
    return f"{value:.2f} ({low:.2f}-{high:.2f})"


def _difference_cells(differences: pd.DataFrame, metric: str, digits: int) -> list[str]:
    """Each row's `<metric>_diff` with its interval: `+0.05 (+0.01 to +0.09)`."""
    columns = (differences[f"{metric}_diff{suffix}"] for suffix in ("", "_low", "_high"))
    return [f"{d:+.{digits}f} ({lo:+.{digits}f} to {hi:+.{digits}f})" for d, lo, hi in zip(*columns)]


def differences_table(differences: pd.DataFrame) -> pd.DataFrame:
    """The paired differences for display: `+0.05 (+0.01 to +0.09)` cells, McNemar's discordant
    counts and its p-values, raw and adjusted."""
    return pd.DataFrame({
        "Task": [TASKS[t].title for t in differences["task"]],
        "Models": [f"{a} - {b}" for a, b in zip(differences["model_a"], differences["model_b"])],
        "F1 difference": _difference_cells(differences, "f1", 2),
        "Only a right / only b right": [f"{b} / {c}" for b, c in zip(differences["mcnemar_b"], differences["mcnemar_c"])],
        # Older comparisons (before these columns) show blanks.
        "Detectable difference": [_share(d) for d in differences.get("detectable_diff", [math.nan] * len(differences))],
        "Items needed": [_count(n) for n in differences.get("items_needed", [math.nan] * len(differences))],
        "McNemar p": [f"{p:.3g}" for p in differences["mcnemar_p"]],
        _p_column(differences): [f"{p:.3g}" for p in differences["mcnemar_p_adjusted"]],
    })


def _share(value: float) -> str:
    """An accuracy difference as percentage points; what no number of these items detects: `none`."""
    return "" if math.isnan(value) else "none" if math.isinf(value) else f"{100 * value:.1f} points"


def _count(value: float) -> str:
    return "" if math.isnan(value) else f"{int(value):,}"


def auroc_differences_table(differences: pd.DataFrame) -> pd.DataFrame:
    """The paired AUROC differences for display: each model's AUROC, `+0.05 (+0.01 to +0.09)`
    cells, DeLong's p-values, raw and adjusted."""
    return pd.DataFrame({
        "Task": [TASKS[t].title for t in differences["task"]],
        "Models": [f"{a} - {b}" for a, b in zip(differences["model_a"], differences["model_b"])],
        "AUROC a / b": [f"{a:.2f} / {b:.2f}" for a, b in zip(differences["auroc_a"], differences["auroc_b"])],
        "AUROC difference": _difference_cells(differences, "auroc", 2),
        "DeLong p": [f"{p:.3g}" for p in differences["delong_p"]],
        _p_column(differences): [f"{p:.3g}" for p in differences["delong_p_adjusted"]],
    })


def sampled_table(sampled: pd.DataFrame) -> pd.DataFrame:
    """The models answering several samples per item, for display: F1 as the mean over samples with
    its interval, the run-to-run SD of F1 and the F1 of the per-item majority (maj@K)."""
    return pd.DataFrame({
        "Task": [TASKS[t].title for t in sampled["task"]],
        "Model": sampled["model"],
        "Samples": sampled["samples"].astype(int),
        "F1, mean over samples": [interval_cell(f, lo, hi) for f, lo, hi in zip(sampled["f1"], sampled["f1_low"], sampled["f1_high"])],
        "Run-to-run SD": [f"{sd:.3f}" for sd in sampled["f1_run_sd"]],
        "F1 of the majority": [f"{m:.2f}" for m in sampled["f1_majority"]],
    })


def sampled_differences_table(differences: pd.DataFrame) -> pd.DataFrame:
    """The paired differences in mean accuracy of sampled models, for display."""
    return pd.DataFrame({
        "Task": [TASKS[t].title for t in differences["task"]],
        "Models (samples)": [f"{a} ({ka}) - {b} ({kb})" for a, b, ka, kb in zip(
            differences["model_a"], differences["model_b"], differences["k_a"], differences["k_b"])],
        "Accuracy a / b": [f"{a:.3f} / {b:.3f}" for a, b in zip(differences["accuracy_a"], differences["accuracy_b"])],
        "Accuracy difference": _difference_cells(differences, "accuracy", 3),
        "Sign-flip p": [f"{p:.3g}" for p in differences["p"]],
        _p_column(differences): [f"{p:.3g}" for p in differences["p_adjusted"]],
    })
