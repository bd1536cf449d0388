"""The paper's Table 3 for any number of models, paired differences, a forest plot, and
for models that give scores: paired AUROC differences and their curves."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd

from medassets.core.metrics import (
    CORRECTIONS,
    ECE_BINS,
    METRICS,
    SCORE_METRICS,
    SETTINGS,
    binary_report,
    delong,
    mcnemar,
    paired_auroc_difference,
    paired_difference,
    pr_points,
    reliability_bins,
    roc_points,
    score_report,
)
from medassets.tasks import TASK_KEYS, TASKS


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
        "table3": metrics_settings(metrics) | {"scores": has_scores(metrics)},
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


def _percent(confidence: float) -> str:
    return f"{round(confidence * 100, 4):g}%"


def _intervals(confidences: list[float], policies: list[str], kind: str) -> str:
    """`90% bootstrap intervals; invalid answers excluded`, saying so where partitions differ."""
    levels = " or ".join(_percent(c) for c in confidences) + (" (differing between partitions)" if len(confidences) > 1 else "")
    policy = " or ".join(_INVALID_POLICY_TEXT[p] for p in policies) + (" (differing between partitions)" if len(policies) > 1 else "")
    return f"{levels} {kind} intervals; invalid answers {policy}"


def forest_plot_label(metrics_settings: dict[str, list]) -> str:
    return f"F1 of the positive class ({_intervals(metrics_settings['confidence'], metrics_settings['invalid_policy'], 'bootstrap')})"


def headings(settings: dict[str, dict]) -> dict[str, str]:
    """The heading of each table and the plot, stating the settings its numbers were computed with."""
    table, pairs = settings["table3"], settings["f1_differences"]
    scored = " and, where a model gives scores, AUROC and AUPRC" if table.get("scores") else ""
    gold = " or ".join(table["gold"]) + " gold labels" + (" (differing between partitions)" if len(table["gold"]) > 1 else "")
    shown = {
        "table3": f"Precision, recall and F1 of the positive class{scored} with "
        + _intervals(table["confidence"], table["invalid_policy"], "percentile bootstrap")
        + f"; {gold}",
        "forest_plot": forest_plot_label(table),
        "f1_differences": "Paired F1 differences with "
        + _intervals([pairs["confidence"]], [pairs["invalid_policy"]], "paired bootstrap")
        + f"; McNemar's exact test, {adjustment(pairs['correction'])}, significant below {significance(pairs['confidence']):g}",
        "score_curves": "ROC and precision-recall curves and a reliability diagram of each model that gives scores "
        f"(calibration in {ECE_BINS} equal-width bins of the score; ECE weighs each bin by its items)",
    }
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


def _task_order(tasks) -> list[str]:
    return [task for task in TASK_KEYS if task in set(tasks)]


def table3(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per task; for each metric and model a cell with its interval, then the invalid counts.

    `metrics` has one row per (task, model) with the fields of `binary_report`, and may have
    those of `score_report` (NaN for a model without scores). When some row has a finite
    AUROC, AUROC and AUPRC columns follow F1, with `NO_SCORES` for a model without scores.
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
        if has_scores(metrics):
            for metric, model in itertools.product(SCORE_METRICS, models):
                column = f"{metric.upper()} {model}"
                if (task, model) not in indexed.index:
                    row[column] = "not evaluated"
                elif np.isfinite(float(indexed.loc[(task, model), metric])):
                    r = indexed.loc[(task, model)]
                    row[column] = interval_cell(r[metric], r[f"{metric}_low"], r[f"{metric}_high"])
                else:
                    row[column] = NO_SCORES
        for model in models:
            invalid = indexed["invalid"].get((task, model))
            row[f"Invalid {model}"] = "" if invalid is None else int(invalid)
        rows.append(row)
    return pd.DataFrame(rows)


DIFFERENCE_COLUMNS = [
    "task", "model_a", "model_b", "n", "f1_a", "f1_b", "f1_diff", "f1_diff_low", "f1_diff_high",
    "mcnemar_b", "mcnemar_c", "mcnemar_p", "mcnemar_p_adjusted", "correction",
]


def model_pairs(models, *, pairs: str = "every", reference: str | None = None) -> list[tuple[str, str]]:
    """`every` pair of models (quadratic in their number), or each model against the `reference`."""
    models = sorted(models)
    if pairs == "every":
        return list(itertools.combinations(models, 2))
    if pairs != "reference":
        raise ValueError(f"pairs must be 'every' or 'reference', got {pairs!r}")
    if reference is None:
        raise ValueError("pairs 'reference' compares each model with `reference`: name that model")
    if reference not in models:
        raise ValueError(f"the reference model {reference!r} has no labels; models: {models}")
    return [(model, reference) for model in models if model != reference]


def _paired_items(of_task: pd.DataFrame, chosen: list[tuple[str, str]], values: str):
    """For each chosen pair present in one task's labels: (a, b, gold, a's values, b's values) of
    the items, paired by id, that both models have a value for."""
    wide = of_task.pivot(index="id", columns="model", values=values)
    gold = of_task.drop_duplicates("id").set_index("id")["gold"].reindex(wide.index)
    for a, b in chosen:
        if a in wide and b in wide:
            both = wide[a].notna() & wide[b].notna()
            yield a, b, gold[both].to_numpy(), wide.loc[both, a].to_numpy(), wide.loc[both, b].to_numpy()


def paired_f1_differences(
    labels: pd.DataFrame, *, n_resamples: int, confidence: float, seed: int, invalid: str,
    pairs: str = "every", reference: str | None = None, correction: str = "holm",
) -> pd.DataFrame:
    """For each task and pair of models: F1(a) - F1(b) with a paired bootstrap interval, and
    McNemar's exact test, its p-value adjusted across the tasks of the pair (`holm`, `bh` or `none`).

    `labels` has columns task, model, id, gold and label (1, 0, or -1 when invalid). Items
    pair by id; an item only one model answered is left out of that pair.
    """
    adjust = CORRECTIONS[correction]
    chosen = model_pairs(labels["model"].unique(), pairs=pairs, reference=reference)
    rows = []
    for task in _task_order(labels["task"]):
        for a, b, truth, pred_a, pred_b in _paired_items(labels[labels["task"] == task], chosen, "label"):
            result = paired_difference(
                truth, pred_a, pred_b, metric="f1", n_resamples=n_resamples, confidence=confidence, seed=seed, invalid=invalid,
            )
            test = mcnemar(truth, pred_a, pred_b, invalid=invalid)
            rows.append({
                "task": task, "model_a": a, "model_b": b, "n": result["n"],
                "f1_a": result["a"], "f1_b": result["b"],
                "f1_diff": result["diff"], "f1_diff_low": result["low"], "f1_diff_high": result["high"],
                "mcnemar_b": test["b"], "mcnemar_c": test["c"], "mcnemar_p": test["p_value"], "correction": correction,
            })
    frame = pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
    for _, across_tasks in frame.groupby(["model_a", "model_b"]):
        frame.loc[across_tasks.index, "mcnemar_p_adjusted"] = adjust(across_tasks["mcnemar_p"])
    return frame.astype({"mcnemar_p_adjusted": float})


def differences_table(differences: pd.DataFrame) -> pd.DataFrame:
    """The paired differences for display: `+0.05 (+0.01 to +0.09)` cells, McNemar's discordant
    counts and its p-values, raw and adjusted."""
    return pd.DataFrame({
        "Task": [TASKS[t].title for t in differences["task"]],
        "Models": [f"{a} - {b}" for a, b in zip(differences["model_a"], differences["model_b"])],
        "F1 difference": [
            f"{d:+.2f} ({lo:+.2f} to {hi:+.2f})"
            for d, lo, hi in zip(differences["f1_diff"], differences["f1_diff_low"], differences["f1_diff_high"])
        ],
        "Only a right / only b right": [f"{b} / {c}" for b, c in zip(differences["mcnemar_b"], differences["mcnemar_c"])],
        "McNemar p": [f"{p:.3g}" for p in differences["mcnemar_p"]],
        _p_column(differences): [f"{p:.3g}" for p in differences["mcnemar_p_adjusted"]],
    })


AUROC_DIFFERENCE_COLUMNS = [
    "task", "model_a", "model_b", "n", "auroc_a", "auroc_b", "auroc_diff", "auroc_diff_low", "auroc_diff_high",
    "delong_z", "delong_p", "delong_p_adjusted", "correction",
]


def scored_models(labels: pd.DataFrame, task: str) -> list[str]:
    """The models with a finite score on every one of their items of `task`, sorted."""
    if "score" not in labels:
        return []
    of_task = labels[labels["task"] == task]
    finite = np.isfinite(of_task["score"].astype(float)).groupby(of_task["model"]).all()
    return sorted(finite.index[finite])


def paired_auroc_differences(
    labels: pd.DataFrame, *, n_resamples: int, confidence: float, seed: int,
    pairs: str = "every", reference: str | None = None, correction: str = "holm",
) -> pd.DataFrame:
    """For each task and pair of models both scoring every item of the task: AUROC(a) - AUROC(b)
    with a paired bootstrap interval, and DeLong's test, its p-value adjusted across the tasks
    of the pair (`holm`, `bh` or `none`), like McNemar's in `paired_f1_differences`.

    `labels` has columns task, model, id, gold and score (NaN, or no column, for a model
    without scores). Items pair by id; an item only one model scored is left out of that
    pair. Pairs are chosen among the scored models as `model_pairs` does (none when the
    reference gives no scores); a task whose paired items lack a class, or have fewer than
    two of either, has no row. Fewer than two scored models give an empty frame.
    """
    adjust = CORRECTIONS[correction]
    tasks = _task_order(labels["task"])
    scored = {task: scored_models(labels, task) for task in tasks}
    models = sorted(set().union(*scored.values()))
    unscored_reference = pairs == "reference" and reference is not None and reference not in models
    chosen = [] if unscored_reference else model_pairs(
        models, pairs=pairs, reference=reference
    )
    rows = []
    for task in tasks:
        of_task = labels[(labels["task"] == task) & labels["model"].isin(scored[task])]
        if of_task.empty:
            continue
        for a, b, truth, scores_a, scores_b in _paired_items(of_task, chosen, "score"):
            if min(truth.sum(), len(truth) - truth.sum()) < 2:
                continue
            interval = paired_auroc_difference(
                truth, scores_a, scores_b, n_resamples=n_resamples, confidence=confidence, seed=seed
            )
            test = delong(truth, scores_a, scores_b)
            rows.append({
                "task": task, "model_a": a, "model_b": b, "n": interval["n"],
                "auroc_a": interval["a"], "auroc_b": interval["b"], "auroc_diff": interval["diff"],
                "auroc_diff_low": interval["low"], "auroc_diff_high": interval["high"],
                "delong_z": test["z"], "delong_p": test["p_value"], "correction": correction,
            })
    frame = pd.DataFrame(rows, columns=AUROC_DIFFERENCE_COLUMNS)
    for _, across_tasks in frame.groupby(["model_a", "model_b"]):
        frame.loc[across_tasks.index, "delong_p_adjusted"] = adjust(across_tasks["delong_p"])
    return frame.astype({"delong_p_adjusted": float})


def auroc_differences_table(differences: pd.DataFrame) -> pd.DataFrame:
    """The paired AUROC differences for display: each model's AUROC, `+0.05 (+0.01 to +0.09)`
    cells, DeLong's p-values, raw and adjusted."""
    return pd.DataFrame({
        "Task": [TASKS[t].title for t in differences["task"]],
        "Models": [f"{a} - {b}" for a, b in zip(differences["model_a"], differences["model_b"])],
        "AUROC a / b": [f"{a:.2f} / {b:.2f}" for a, b in zip(differences["auroc_a"], differences["auroc_b"])],
        "AUROC difference": [
            f"{d:+.2f} ({lo:+.2f} to {hi:+.2f})"
            for d, lo, hi in zip(differences["auroc_diff"], differences["auroc_diff_low"], differences["auroc_diff_high"])
        ],
        "DeLong p": [f"{p:.3g}" for p in differences["delong_p"]],
        _p_column(differences): [f"{p:.3g}" for p in differences["delong_p_adjusted"]],
    })


def prompt_sensitivity(metrics: pd.DataFrame, setups: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Per base model with several registry entries, and task: each entry's F1 and the spread
    (largest minus smallest). `setups` maps a model to its (base model, prompt setup)."""
    by_base: dict[str, list[str]] = {}
    for model, (base, _) in sorted(setups.items()):
        if model in set(metrics["model"]):
            by_base.setdefault(base, []).append(model)
    indexed = metrics.set_index(["task", "model"])["f1"]
    rows = []
    for base, models in by_base.items():
        if len(models) < 2:
            continue
        for task in _task_order(metrics["task"]):
            f1 = {model: indexed.get((task, model)) for model in models}
            scored = [value for value in f1.values() if value is not None]
            row = {"Base model": base, "Task": TASKS[task].title}
            row |= {f"{model} ({setups[model][1]})": "" if value is None else f"{value:.2f}" for model, value in f1.items()}
            row["Spread"] = f"{max(scored) - min(scored):.2f}" if len(scored) > 1 else ""
            rows.append(row)
    return pd.DataFrame(rows)


def forest_plot(metrics: pd.DataFrame) -> bytes:
    """F1 with its interval per task and model, as a PNG image; its axis label (also the PNG's
    `Description`) states the confidence level and invalid-answer policy of the metrics."""
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


def metrics_of_labels(labels: pd.DataFrame, *, gold: str, n_resamples: int, confidence: float, seed: int, invalid: str) -> pd.DataFrame:
    """One row per (task, model) of `labels` (task, model, id, gold, label) as the metrics asset
    records it: `binary_report`'s numbers and settings, and `gold` (which gold labels these are)."""
    rows = []
    for (task, model), part in labels.groupby(["task", "model"], sort=True):
        report = binary_report(part["gold"], part["label"], n_resamples=n_resamples, confidence=confidence, seed=seed, invalid=invalid)
        rows.append({"task": task, "model": model, **{k: v for k, v in report.items() if not isinstance(v, list)}, "gold": gold})
    return pd.DataFrame(rows)
