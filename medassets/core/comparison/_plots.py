"""The comparison's plots: F1 by task and model (a forest plot) and, for models that give
scores, ROC and precision-recall curves and a reliability diagram."""

from __future__ import annotations

import io

import pandas as pd

from medassets.core.metrics import ECE_BINS, pr_points, reliability_bins, roc_points, score_report
from medassets.core.comparison._tables import task_order, scored_models
from medassets.core.comparison._text import forest_plot_label, metrics_settings
from medassets.tasks import TASKS


def forest_plot(metrics: pd.DataFrame) -> bytes:
    """F1 with its interval per task and model, as a PNG image; its axis label (also the PNG's
    `Description`) states the confidence level and invalid-answer policy of the metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = task_order(metrics["task"])
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
    label = forest_plot_label(metrics_settings(metrics))
    ax.set_xlabel(label, fontsize="small")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(models), 3), fontsize="small", frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=110, metadata={"Title": "F1 by task and model", "Description": label})
    plt.close(fig)
    return image.getvalue()


def score_curves_plot(labels: pd.DataFrame, task: str) -> bytes:
    """ROC curves, precision-recall curves and a reliability diagram of every model scoring all
    items of `task` (`scored_models`), side by side, as a PNG image (its `Description` names
    the models). Raises ValueError when no model has scores on the task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = scored_models(labels, task)
    if not models:
        raise ValueError(f"no model has a score on every item of task {task!r}: nothing to plot")
    of_task = labels[labels["task"] == task]
    fig, (roc_ax, pr_ax, calibration_ax) = plt.subplots(1, 3, figsize=(13, 4.4))
    for model in models:
        rows = of_task[of_task["model"] == model]
        truth, scores = rows["gold"].to_numpy(), rows["score"].to_numpy(dtype=float)
        report = score_report(truth, scores, n_resamples=1)
        if 0 < truth.sum() < len(truth):
            roc_ax.plot(*roc_points(truth, scores), label=f"{model} (AUROC {report['auroc']:.2f})")
        if truth.sum() > 0:
            recall, precision = pr_points(truth, scores)
            pr_ax.step(recall, precision, where="post", label=f"{model} (AP {report['auprc']:.2f})")
        bins = reliability_bins(truth, scores)
        bins = bins[bins["n"] > 0]
        calibration_ax.plot(bins["mean_score"], bins["observed_rate"], "o-", label=f"{model} (ECE {report['ece']:.2f})")
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    calibration_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    prevalence = of_task.drop_duplicates("id")["gold"].mean()
    pr_ax.axhline(prevalence, color="grey", linestyle=":", linewidth=1)
    for ax, title, xlabel, ylabel in (
        (roc_ax, "ROC", "False positive rate", "True positive rate"),
        (pr_ax, "Precision-recall", "Recall", "Precision"),
        (calibration_ax, f"Reliability ({ECE_BINS} equal-width bins)", "Mean score in bin", "Observed positive rate"),
    ):
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    fig.suptitle(TASKS[task].title)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100, metadata={
        "Title": f"Score curves: {TASKS[task].title}", "Description": f"Models: {', '.join(models)}",
    })
    plt.close(fig)
    return image.getvalue()
