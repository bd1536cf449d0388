"""The paper's Table 3 for any number of models, paired differences, and a forest plot."""

from __future__ import annotations

import io
import itertools

import pandas as pd

from medassets.core.metrics import METRICS, paired_difference
from medassets.tasks import TASK_KEYS, TASKS


def interval_cell(value: float, low: float, high: float) -> str:
    """A Table 3 cell: `0.84 (0.80-0.88)`."""
    return f"{value:.2f} ({low:.2f}-{high:.2f})"


def _task_order(tasks) -> list[str]:
    return [task for task in TASK_KEYS if task in set(tasks)]


def table3(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per task; for each metric and model a cell with its interval, then the invalid counts.

    `metrics` has one row per (task, model) with the fields of `binary_report`.
    """
    models = sorted(metrics["model"].unique())
    indexed = metrics.set_index(["task", "model"])
    rows = []
    for task in _task_order(metrics["task"]):
        row = {"Task": TASKS[task].title}
        for metric, model in itertools.product(METRICS, models):
            column = f"{'F1' if metric == 'f1' else metric.capitalize()} {model}"
            if (task, model) in indexed.index:
                r = indexed.loc[(task, model)]
                row[column] = interval_cell(r[metric], r[f"{metric}_low"], r[f"{metric}_high"])
            else:
                row[column] = "not evaluated"
        for model in models:
            invalid = indexed["invalid"].get((task, model))
            row[f"Invalid {model}"] = "" if invalid is None else int(invalid)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_f1_differences(labels: pd.DataFrame, *, n_resamples: int, confidence: float, seed: int, invalid: str) -> pd.DataFrame:
    """F1(a) - F1(b) with a paired bootstrap interval, for each task and pair of models.

    `labels` has columns task, model, id, gold and label (1, 0, or -1 when invalid).
    """
    rows = []
    for task in _task_order(labels["task"]):
        by_model = {
            model: part.set_index("id").sort_index()
            for model, part in labels[labels["task"] == task].groupby("model")
        }
        for a, b in itertools.combinations(sorted(by_model), 2):
            ids = by_model[a].index.intersection(by_model[b].index)
            result = paired_difference(
                by_model[a].loc[ids, "gold"], by_model[a].loc[ids, "label"], by_model[b].loc[ids, "label"],
                metric="f1", n_resamples=n_resamples, confidence=confidence, seed=seed, invalid=invalid,
            )
            rows.append({
                "task": task, "model_a": a, "model_b": b, "n": result["n"],
                "f1_a": result["a"], "f1_b": result["b"],
                "f1_diff": result["diff"], "f1_diff_low": result["low"], "f1_diff_high": result["high"],
            })
    return pd.DataFrame(rows, columns=["task", "model_a", "model_b", "n", "f1_a", "f1_b", "f1_diff", "f1_diff_low", "f1_diff_high"])


def differences_table(differences: pd.DataFrame) -> pd.DataFrame:
    """The paired differences for display: `+0.05 (0.01-0.09)` cells."""
    return pd.DataFrame({
        "Task": [TASKS[t].title for t in differences["task"]],
        "Models": [f"{a} - {b}" for a, b in zip(differences["model_a"], differences["model_b"])],
        "F1 difference": [
            f"{d:+.2f} ({lo:+.2f} to {hi:+.2f})"
            for d, lo, hi in zip(differences["f1_diff"], differences["f1_diff_low"], differences["f1_diff_high"])
        ],
    })


def forest_plot(metrics: pd.DataFrame) -> bytes:
    """F1 with its interval per task and model, as a PNG image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = _task_order(metrics["task"])
    models = sorted(metrics["model"].unique())
    indexed = metrics.set_index(["task", "model"])
    fig, ax = plt.subplots(figsize=(8, 0.9 * len(tasks) + 1.2))
    step = 0.7 / max(len(models), 1)
    for m, model in enumerate(models):
        ys, xs, lows, highs = [], [], [], []
        for t, task in enumerate(tasks):
            if (task, model) in indexed.index:
                r = indexed.loc[(task, model)]
                ys.append(t + (m - (len(models) - 1) / 2) * step)
                xs.append(r["f1"])
                lows.append(r["f1"] - r["f1_low"])
                highs.append(r["f1_high"] - r["f1"])
        ax.errorbar(xs, ys, xerr=[lows, highs], fmt="o", capsize=3, label=model)
    ax.set_yticks(range(len(tasks)), [TASKS[t].title for t in tasks])
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("F1 of the positive class (95% bootstrap interval)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(models), 3), fontsize="small", frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=110)
    plt.close(fig)
    return image.getvalue()
